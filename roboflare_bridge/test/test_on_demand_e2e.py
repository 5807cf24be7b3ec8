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
On demand, end to end: what streams from each robot is what something local subscribes to.

Upstream traffic is judged where it happens: the emulator counts what it sends per robot
and stream, and lists each connection's subscriptions.
"""

import time

from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from roboflare_bridge.codec.message_types import message_class
from roboflare_bridge.parameters import build_config
from roboflare_bridge.tools.rviz_config import write_config
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, wait_future, wait_until_true,
)
from sensor_msgs.msg import CompressedImage
from test_fleet_e2e import latest_status
from test_rviz_e2e import display_qos
from tf2_msgs.msg import TFMessage
import yaml

LINGER_S = 1.0
LATCHED_TOPICS = {'/map', '/robot_description', '/tf_static'}
ROBOTS = ('rbt_0001', 'rbt_0002')
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


def stats(emulator):
    return emulator.control('GET', '/_emulator/stats')


def subscriptions(emulator, robot_id):
    """Return what a robot's echo stream sends now: its connection's subscriptions."""
    return set(stats(emulator)['streams'].get(f'{robot_id}/ros/topics/echo', {}).get(
        'subscriptions', ()))


def connected(emulator, robot_id, stream):
    return f'{robot_id}/{stream}' in stats(emulator)['streams']


def sent(emulator, robot_id, stream):
    return stats(emulator)['sent_bytes'].get(robot_id, {}).get(stream, 0)


def unsubscribes(emulator, robot_id):
    return stats(emulator)['echo_ops'].get(robot_id, {}).get('unsubscribe', 0)


def until(condition, what, timeout=20.0):
    """Wait for the emulator's state (polled with a deadline); return the seconds it took."""
    started = time.monotonic()
    wait_until_true(condition, timeout, what)
    return time.monotonic() - started


def watched(ros, expected):
    return latest_status(ros, predicate=lambda s: list(s.watched) == expected)


def test_only_what_is_watched_streams_and_stops_after_the_linger(ros, tmp_path):
    emulator = EmulatorThread(robots=2, camera_fps=10, camera_size=(160, 120))
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'on_demand_linger_s': LINGER_S, 'diagnostics_period_s': 0.5})
    made = []
    try:
        # Nothing local subscribes: every listed topic is advertised, only latched ones
        # stream, and neither camera nor logs connect.
        until(lambda: all(subscriptions(emulator, robot) == LATCHED_TOPICS
                          for robot in ROBOTS), 'latched topics only')
        until(lambda: '/roboflare/robot_2/odom' in dict(ros.node.get_topic_names_and_types()),
              'the odometry advertised before anyone subscribes')
        # On a node of its own, so the bridge node's executor does not walk the fleet's
        # (the graph may know the publisher a moment before the name of its node).
        until(lambda: [info.node_name for info in ros.node.get_publishers_info_by_topic(
            '/roboflare/robot_2/odom')] == ['roboflare_bridge_mirrors'],
            'the publisher on the node roboflare_bridge_mirrors')
        assert not any(connected(emulator, robot, stream) for robot in ROBOTS
                       for stream in ('camera/ws', 'logs/ws'))
        idle = sent(emulator, 'rbt_0001', 'ros/topics/echo')

        # A best-effort subscriber (the publisher is reliable) starts that topic of that
        # robot only, within a second.
        odometry = Collector()
        made.append(ros.node.create_subscription(Odometry, '/roboflare/robot_1/odom',
                                                 odometry, BEST_EFFORT))
        started_s = until(lambda: '/odom' in subscriptions(emulator, 'rbt_0001'), 'odom')
        print(f'/odom subscribed upstream {started_s:.2f} s after the local subscription')
        assert started_s < 1.0
        odometry.count(1, 10)
        assert subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS | {'/odom'}
        assert subscriptions(emulator, 'rbt_0002') == LATCHED_TOPICS
        assert sent(emulator, 'rbt_0001', 'ros/topics/echo') > idle

        # rviz toggles the display: a subscriber back inside the linger keeps the stream.
        before = unsubscribes(emulator, 'rbt_0001')
        ros.destroy(made.pop())
        again = Collector()
        made.append(ros.node.create_subscription(Odometry, '/roboflare/robot_1/odom', again,
                                                 10))
        again.count(3, 10)
        assert unsubscribes(emulator, 'rbt_0001') == before
        assert '/odom' in subscriptions(emulator, 'rbt_0001')

        # /tf: every robot's flows while it has a local subscriber.
        transforms = Collector()
        made.append(ros.node.create_subscription(TFMessage, '/tf', transforms, 100))
        transforms.wait_for(lambda got: {t.header.frame_id.split('/')[0] for m in got
                                         for t in m.transforms} >= {'robot_1', 'robot_2'}, 20)
        assert '/tf' in subscriptions(emulator, 'rbt_0002')

        # A camera connects while watched; the robots' status and diagnostics say so.
        images = Collector()
        made.append(ros.node.create_subscription(
            CompressedImage, '/roboflare/robot_2/camera/image_raw/compressed', images, 10))
        images.count(3, 20)
        assert connected(emulator, 'rbt_0002', 'camera/ws')
        assert not connected(emulator, 'rbt_0001', 'camera/ws')
        assert list(watched(ros, [True, True]).mirrored) == [True, True]
        values = diagnostics_values(ros, 'robot robot_2', 20,
                                    lambda v: float(v['received_bytes_per_s']) > 0)
        assert 'camera on' in values['_message'], values['_message']

        # The last subscriber leaves: after the linger, and not before, nothing but latched
        # topics streams and the camera closes.
        ros.destroy(*made)
        made.clear()
        released_s = until(lambda: subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS,
                           'odom let go')
        until(lambda: not connected(emulator, 'rbt_0002', 'camera/ws'), 'the camera closed')
        print(f'/odom unsubscribed upstream {released_s:.2f} s after the last subscriber left')
        assert released_s >= LINGER_S
        assert subscriptions(emulator, 'rbt_0002') == LATCHED_TOPICS
        watched(ros, [False, False])
        quiet = sent(emulator, 'rbt_0001', 'ros/topics/echo')
        diagnostics_values(ros, 'robot robot_1', 20,
                           lambda v: v['watched'] == 'false' and
                           float(v['received_bytes_per_s']) == 0)
        assert sent(emulator, 'rbt_0001', 'ros/topics/echo') == quiet
    finally:
        ros.destroy(*made)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_a_subscription_made_during_a_reconnect_or_while_offline_flows_once_it_is_back(
        ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'camera': False, 'robots_poll_interval_s': 0.5,
        'on_demand_linger_s': LINGER_S, 'diagnostics_period_s': 0.5})
    odometry, logs = Collector(), Collector()
    made = []
    try:
        until(lambda: subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS, 'connected')
        # The cloud goes away for a while; the echo stream is reconnecting when rviz
        # subscribes.
        emulator.control('POST', '/_emulator/outage', {'seconds': 3})
        diagnostics_values(ros, 'rbt_0001/ros/topics/echo', 20,
                           lambda v: v['connected'] == 'false')
        made.append(ros.node.create_subscription(Odometry, '/roboflare/robot_1/odom',
                                                 odometry, 10))
        odometry.count(1, 30)
        assert '/odom' in subscriptions(emulator, 'rbt_0001')
        # The robot goes offline (no stream at all); a log subscriber waits for it.
        emulator.control('POST', '/_emulator/robots/rbt_0001', {'status': 'offline'})
        latest_status(ros, predicate=lambda s: list(s.mirrored) == [False])
        made.append(ros.node.create_subscription(Log, '/roboflare/robot_1/rosout', logs, 10))
        emulator.control('POST', '/_emulator/robots/rbt_0001', {'status': 'online'})
        logs.count(1, 30)
        assert connected(emulator, 'rbt_0001', 'logs/ws')
    finally:
        ros.destroy(*made)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_mirror_on_demand_switched_at_run_time_both_ways(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'camera': False, 'remote_logs': False,
        'topics': ['/odom', '/imu', '/map'], 'on_demand_linger_s': LINGER_S})
    client = ros.node.create_client(SetParameters, bridge.name('set_parameters'))

    def set_on_demand(value):
        request = SetParameters.Request(parameters=[
            Parameter('mirror_on_demand', value=value).to_parameter_msg()])
        assert wait_future(client.call_async(request), 15).results[0].successful

    try:
        until(lambda: subscriptions(emulator, 'rbt_0001') == {'/map'}, 'latched only')
        assert client.wait_for_service(timeout_sec=20)
        set_on_demand(False)
        until(lambda: subscriptions(emulator, 'rbt_0001') == {'/odom', '/imu', '/map'},
              'every selected topic')
        set_on_demand(True)
        until(lambda: subscriptions(emulator, 'rbt_0001') == {'/map'},
              'latched only again, nobody watching')
    finally:
        ros.destroy(client)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_an_rviz_stand_in_gets_every_display_within_two_seconds(ros, tmp_path):
    """Subscribe as rviz does to a generated config: each display's topic with its QoS."""
    emulator = EmulatorThread(robots=2, camera_fps=10, camera_size=(160, 120))
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {'robots': ['*']})
    made = []
    try:
        config = build_config({'base_url': emulator.url, 'token_file': str(bridge.token_file)})
        write_config(['*'], config, tmp_path / 'fleet.rviz')
        displays = yaml.safe_load((tmp_path / 'fleet.rviz').read_text())[
            'Visualization Manager']['Displays']
        topics = [d.get('Topic') or d.get('Description Topic') for d in displays]
        topics = [topic for topic in topics if topic is not None]
        names = [topic['Value'] for topic in topics] + ['/tf', '/tf_static']
        until(lambda: set(names) <= set(dict(ros.node.get_topic_names_and_types())),
              "every display's topic advertised")
        until(lambda: all(subscriptions(emulator, robot) == LATCHED_TOPICS
                          for robot in ROBOTS), 'nobody watching yet')
        published = dict(ros.node.get_topic_names_and_types())
        received = {name: Collector() for name in names}
        started = time.monotonic()
        for topic in topics:
            made.append(ros.node.create_subscription(
                message_class(published[topic['Value']][0]), topic['Value'],
                received[topic['Value']], display_qos(topic)))
        made.append(ros.node.create_subscription(TFMessage, '/tf', received['/tf'], 100))
        made.append(ros.node.create_subscription(TFMessage, '/tf_static', received['/tf_static'],
                                                 display_qos({'Depth': 100,
                                                              'Reliability Policy': 'Reliable',
                                                              'Durability Policy':
                                                                  'Transient Local'})))
        for name, collector in received.items():
            collector.count(1, 10)
        every_display_s = time.monotonic() - started
        print(f'{len(names)} topics, every one with data {every_display_s:.2f} s after the '
              'stand-in subscribed')
        assert every_display_s < 2.0
    finally:
        ros.destroy(*made)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()
