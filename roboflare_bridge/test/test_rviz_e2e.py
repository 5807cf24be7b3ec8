# Copyright 2026 Roboflare developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
What rviz needs, end to end: three robots from the emulator through a bridge process.

A late transient-local subscriber gets each robot's map and description; TF reaches every
frame a mirrored message names from the fleet frame, including each URDF link as rviz's
RobotModel looks it up; a generated rviz config names only published topics, with QoS
that matches their publishers.
"""

import threading
import xml.etree.ElementTree as ElementTree

from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import OccupancyGrid, Odometry
import pytest
from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, qos_check_compatible, QoSCompatibility, QoSProfile,
    ReliabilityPolicy,
)
from roboflare_bridge.codec.message_types import message_class
from roboflare_bridge.parameters import build_config
from roboflare_bridge.tools.rviz_config import (
    robot_model_frame, rviz_document, rviz_tf_prefix, write_config,
)
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, rss_bytes,
)
from roboflare_dev.tf_tree import TransformTree
from sensor_msgs.msg import CompressedImage, Imu, LaserScan
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
import yaml

NAMES = ['robot_1', 'robot_2', 'robot_3']
FLEET = 'roboflare_fleet'
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def fleet(ros, tmp_path_factory):
    emulator = EmulatorThread(robots=3, camera_fps=5.0)
    tmp_path = tmp_path_factory.mktemp('rviz')
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['rbt_0001', 'rbt_0002', 'rbt_0003'], 'remote_logs': False})
    odometry = {name: Collector() for name in NAMES}
    subscriptions = [ros.node.create_subscription(Odometry, f'/roboflare/{name}/odom',
                                                  odometry[name], 10) for name in NAMES]
    try:
        for name in NAMES:  # every robot mirrored: its latched topics were published
            odometry[name].count(1, 30)
        yield emulator, bridge, tmp_path
    finally:
        ros.destroy(*subscriptions)
        assert bridge.stop() == 0, bridge.log()[-2000:]
        emulator.close()


def test_a_late_subscriber_gets_each_robots_map_and_description(ros, fleet):
    maps = {name: Collector() for name in NAMES}
    descriptions = {name: Collector() for name in NAMES}
    subscriptions = []
    for name in NAMES:
        subscriptions += [
            ros.node.create_subscription(OccupancyGrid, f'/roboflare/{name}/map', maps[name],
                                         LATCHED),
            ros.node.create_subscription(String, f'/roboflare/{name}/robot_description',
                                         descriptions[name], LATCHED)]
    try:
        for name in NAMES:
            [grid] = maps[name].count(1, 15)
            assert grid.header.frame_id == f'{name}/map'
            assert len(grid.data) == grid.info.width * grid.info.height > 0
            [description] = descriptions[name].count(1, 15)
            assert ElementTree.fromstring(description.data).get('name') == \
                name.replace('_', '-')
    finally:
        ros.destroy(*subscriptions)


def test_tf_reaches_every_frame_that_a_mirrored_message_or_the_urdf_names(ros, fleet):
    tree, frames, lock = TransformTree(), set(), threading.Lock()
    descriptions = {name: Collector() for name in NAMES}

    def on_tf(message):
        with lock:
            tree.add(message.transforms)

    def named(message):
        with lock:
            frames.add(message.header.frame_id)
            if getattr(message, 'child_frame_id', ''):
                frames.add(message.child_frame_id)
    tf_seen, named_seen = Collector(), Collector()
    subscriptions = [
        ros.node.create_subscription(TFMessage, '/tf', lambda m: (on_tf(m), tf_seen(m)), 100),
        ros.node.create_subscription(TFMessage, '/tf_static', on_tf, LATCHED)]
    for name in NAMES:
        for topic, cls, qos in (('odom', Odometry, 10), ('scan', LaserScan, 10),
                                ('imu', Imu, 10), ('map', OccupancyGrid, LATCHED),
                                ('camera/image_raw/compressed', CompressedImage, 10)):
            subscriptions.append(ros.node.create_subscription(
                cls, f'/roboflare/{name}/{topic}', lambda m: (named(m), named_seen(m)), qos))
        subscriptions.append(ros.node.create_subscription(
            String, f'/roboflare/{name}/robot_description', descriptions[name], LATCHED))
    expected = {f'{name}/{frame}' for name in NAMES for frame in (
        'odom', 'base_link', 'laser', 'imu_link', 'map', 'camera_optical_frame')}
    try:
        named_seen.wait_for(lambda _: expected <= frames, 30, 'frames of every topic')
        tf_seen.count(3 * 10, 30)
        urdf_links = {name: [link.get('name') for link in ElementTree.fromstring(
            descriptions[name].count(1, 15)[0].data).iter('link')] for name in NAMES}
    finally:
        ros.destroy(*subscriptions)
    with lock:
        named_frames = set(frames)
    for name in NAMES:
        prefix = rviz_tf_prefix(f'{name}/')
        model_frames = {robot_model_frame(prefix, link) for link in urdf_links[name]}
        own = {f for f in named_frames if f.startswith(f'{name}/')}
        for frame in sorted(own | model_frames):
            assert tree.lookup(FLEET, frame) is not None, (frame, tree.chain(frame))


def display_qos(topic):
    return QoSProfile(
        depth=topic['Depth'], history=HistoryPolicy.KEEP_LAST,
        reliability=(ReliabilityPolicy.BEST_EFFORT if topic['Reliability Policy'] ==
                     'Best Effort' else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if topic['Durability Policy'] ==
                    'Transient Local' else DurabilityPolicy.VOLATILE))


def test_a_generated_rviz_config_names_published_topics_with_matching_qos(ros, fleet):
    emulator, bridge, tmp_path = fleet
    config = build_config({'base_url': emulator.url, 'token_file': str(bridge.token_file)})
    output = tmp_path / 'fleet.rviz'
    write_config(['robot-*'], config, output)  # names as the API knows them, by glob
    document = yaml.safe_load(output.read_text())
    displays = document['Visualization Manager']['Displays']
    assert document['Visualization Manager']['Global Options']['Fixed Frame'] == FLEET
    published = dict(ros.node.get_topic_names_and_types())
    topics = [(d, d.get('Topic') or d.get('Description Topic')) for d in displays]
    topics = [(d, t) for d, t in topics if t is not None]
    classes = {d['Class'].split('/')[-1] for d, _ in topics}
    assert classes == {'RobotModel', 'Map', 'Odometry', 'LaserScan', 'Image'}
    assert len(topics) == 5 * len(NAMES)
    for display, topic in topics:
        name = topic['Value']
        assert name in published, f'{display["Name"]}: {name} is not published'
        message_class(published[name][0])  # a type rviz can load
        publishers = ros.node.get_publishers_info_by_topic(name)
        assert publishers, name
        for publisher in publishers:
            # WARNING = a policy left to the system default (rviz leaves liveliness so).
            compatibility, reason = qos_check_compatible(publisher.qos_profile,
                                                         display_qos(topic))
            assert compatibility != QoSCompatibility.ERROR, f'{name}: {reason}'
        if display['Class'].endswith('RobotModel'):
            assert display['TF Prefix'] in NAMES


def test_the_shipped_rviz_config_is_the_generated_one():
    from pathlib import Path
    from roboflare_bridge.tools.rviz_config import render, resolve
    import asyncio
    shipped = Path(__file__).resolve().parents[1] / 'config' / 'remote_robots.rviz'
    robots = asyncio.run(resolve(['robot-1', 'robot-2'], build_config({}), offline=True))
    regenerated = render(rviz_document(robots, build_config({})), robots,
                         'ros2 run roboflare_bridge rviz_config --robots robot-1 robot-2 '
                         '--offline')
    assert shipped.read_text() == regenerated


def test_a_2000_by_2000_map_is_mirrored_with_bounded_memory_and_a_larger_one_refused(
        ros, tmp_path):
    # One emulator, two bridges: one mirrors the 10 MB map, one whose limit it exceeds.
    # Namespaces of their own: this module's other bridge may still be mirroring robot_1.
    emulator = EmulatorThread(robots=1, map_cells=2000)
    mirroring = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['rbt_0001'], 'topics': ['/map', '/odom'], 'camera': False,
        'remote_logs': False, 'namespace_format': '/bigmap/{robot}',
        'frame_prefix_format': 'bigmap/{robot}/'})
    refusing = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['rbt_0001'], 'topics': ['/map', '/odom'], 'camera': False,
        'remote_logs': False, 'namespace_format': '/refusing/{robot}',
        'frame_prefix_format': 'refusing/{robot}/',
        'echo_max_frame_bytes': 6 << 20, 'diagnostics_period_s': 0.5})
    maps, odometry, refused_maps = Collector(), Collector(), Collector()
    subscriptions = [
        ros.node.create_subscription(OccupancyGrid, '/bigmap/robot_1/map', maps, LATCHED),
        ros.node.create_subscription(Odometry, '/refusing/robot_1/odom', odometry, 10),
        ros.node.create_subscription(OccupancyGrid, '/refusing/robot_1/map', refused_maps,
                                     LATCHED)]
    try:
        [grid] = maps.count(1, 60)
        assert (grid.info.width, grid.info.height, len(grid.data)) == (2000, 2000, 4_000_000)
        assert grid.header.frame_id == 'bigmap/robot_1/map'
        assert min(grid.data) == -1 and max(grid.data) == 100
        first_peak = rss_bytes(mirroring.proc.pid, 'VmHWM')
        for times in (2, 3):  # each reconnection brings the latched map again
            emulator.control('POST', '/_emulator/drop-streams')
            maps.count(times, 60)
        peak = rss_bytes(mirroring.proc.pid, 'VmHWM')
        print(f'2000x2000 map: bridge peak RSS {first_peak >> 20} MiB after the first map, '
              f'{peak >> 20} MiB after three; now {rss_bytes(mirroring.proc.pid) >> 20} MiB')
        # One map in flight at a time: the frame, its parse, its message, not more.
        assert peak - first_peak < 64 << 20, (first_peak >> 20, peak >> 20)
        assert peak < 600 << 20, peak >> 20

        # The refusing bridge names the topic and the parameter, and mirrors the rest.
        odometry.count(5, 30)
        values = diagnostics_values(ros, 'robot robot_1', 30, lambda v: v.get(
            'namespace') == '/refusing/robot_1' and 'oversized_frame_bytes./map' in v)
        assert int(values['oversized_frame_bytes./map']) > 6 << 20
        assert int(values['topic_drops.oversized frame']) >= 1
        assert values['_level'] == DiagnosticStatus.WARN
        assert '/map not mirrored' in values['_message']
        assert 'echo_max_frame_bytes' in values['_message']
        # Listed, so advertised (on demand), but never published: its frame was refused.
        assert refused_maps.messages == []
        message = next(line for line in refusing.log().splitlines()
                       if 'exceeds echo_max_frame_bytes' in line)
        assert '/map' in message and str(6 << 20) in message
    finally:
        ros.destroy(*subscriptions)
        assert mirroring.stop() == 0, mirroring.log()[-2000:]
        assert refusing.stop() == 0, refusing.log()[-2000:]
        emulator.close()
