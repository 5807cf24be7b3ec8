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
"""TopicMirror without a ROS graph: selection, decoding, drops, TF merging, reconnects."""

import asyncio
import json
import logging
import math
import time
import tracemalloc

import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from roboflare_bridge.codec.rclpy_fast_paths import fast_paths
from roboflare_bridge.common.drops import DropCounter
from roboflare_bridge.mirror.publish_batch import PublishBatch
from roboflare_bridge.mirror.robot_clock import RobotClock
from roboflare_bridge.mirror.topic_qos import qos_profile, QosRules
from roboflare_bridge.mirror.topics import (
    frame_topic, MAX_NAMED, MAX_TOPICS, StaticTransforms, TopicMirror, TopicStats,
)
from roboflare_bridge.transport.wire import MAX_LISTED_TOPICS
from roboflare_dev.emulator.sim import SimRobot
from roboflare_dev.testing import fake_publishers, FakePublisher, FakeStream


@pytest.fixture
def mirror():
    factory, publishers = fake_publishers()
    rules = QosRules(transient_local=('/costmap',), overrides=(('/scan', 'best_effort'),))
    m = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory,
                    allow=('/**',), deny=('/secret/**',), qos_rules=rules,
                    throttle_ms={'/scan': 200}, fleet_frame='fleet')
    m.publishers = publishers
    return m


ROBOT = SimRobot(0, 'rbt_0001', 'robot-1')


def echo(topic, type_name, msg):
    return json.dumps({'op': 'message', 'topic': topic, 'type': type_name, 'msg': msg})


def test_subscribes_to_selected_topics_on_every_connection(mirror):
    async def scenario():
        stream = FakeStream()
        for _ in range(2):  # a reconnect asks again
            await mirror.on_connect(stream)
            mirror.on_frame(json.dumps({'op': 'topics', 'topics': [
                {'topic': '/odom', 'type': 'nav_msgs/msg/Odometry'},
                {'topic': '/scan', 'type': 'sensor_msgs/msg/LaserScan'},
                {'topic': '/secret/key', 'type': 'std_msgs/msg/String'},
                {'topic': '/exotic', 'type': 'exotic_msgs/msg/Thing'}]}))
            await asyncio.sleep(0)  # let the scheduled sends run
        return stream.sent
    sent = asyncio.run(scenario())
    per_connection = [{'op': 'list_topics'}, {'op': 'subscribe', 'topic': '/odom'},
                      {'op': 'subscribe', 'topic': '/scan', 'throttle_ms': 200}]
    assert sent == per_connection * 2
    assert mirror.stats.subscribed == 2


def test_messages_are_decoded_prefixed_and_published_under_the_namespace(mirror):
    mirror.on_frame(echo('/odom', 'nav_msgs/msg/Odometry', ROBOT.odometry(10.0)))
    mirror.on_frame(echo('/scan', 'sensor_msgs/msg/LaserScan', ROBOT.laser_scan(10.0)))
    odom = mirror.publishers['/roboflare/robot_1/odom'].messages[0]
    assert (odom.header.frame_id, odom.child_frame_id) == ('robot_1/odom', 'robot_1/base_link')
    assert odom.header.stamp.sec == 10
    scan_pub = mirror.publishers['/roboflare/robot_1/scan']
    assert scan_pub.messages[0].header.frame_id == 'robot_1/laser'
    assert len(scan_pub.messages[0].ranges) == 360
    assert scan_pub.qos.reliability == ReliabilityPolicy.BEST_EFFORT
    assert mirror.publishers['/roboflare/robot_1/odom'].qos.reliability == \
        ReliabilityPolicy.RELIABLE
    assert mirror.stats.published == 2


def test_frames_are_serialised_straight_and_the_codec_takes_what_they_decline(mirror):
    if not fast_paths().cdr_publish:
        pytest.skip('publishing CDR is off: every frame takes the codec path')
    scan = ROBOT.laser_scan(10.0)
    beam_out = dict(scan, ranges=[None] + scan['ranges'][1:])  # null is NaN: still CDR
    no_angle = dict(scan, angle_min=None)  # a null scalar: the codec's path (NaN too)
    for msg in (scan, beam_out, no_angle):
        mirror.on_frame(echo('/scan', 'sensor_msgs/msg/LaserScan', msg))
    mirror.on_frame(echo('/flag', 'std_msgs/msg/Bool', {'data': True}))  # a JSON boolean
    scans = mirror.publishers['/roboflare/robot_1/scan']
    assert scans.serialised == 2 and len(scans.messages) == 3
    assert {m.header.frame_id for m in scans.messages} == {'robot_1/laser'}
    assert list(scans.messages[0].ranges[1:]) == list(scans.messages[1].ranges[1:])
    assert math.isnan(scans.messages[1].ranges[0]) and math.isnan(scans.messages[2].angle_min)
    flag = mirror.publishers['/roboflare/robot_1/flag']
    assert flag.serialised == 0 and flag.messages[0].data is True
    assert mirror.stats.published == 4 and mirror.drops.total == 0


def test_tf_goes_global_and_static_transforms_are_merged(mirror):
    mirror.on_frame(echo('/tf', 'tf2_msgs/msg/TFMessage', ROBOT.tf(1.0)))
    first = {'transforms': ROBOT.tf_static(1.0)['transforms'][:2]}
    second = {'transforms': ROBOT.tf_static(1.0)['transforms'][1:]}
    mirror.on_frame(echo('/tf_static', 'tf2_msgs/msg/TFMessage', first))
    mirror.on_frame(echo('/tf_static', 'tf2_msgs/msg/TFMessage', second))
    tf = mirror.publishers['/tf'].messages[0].transforms[1]
    assert (tf.header.frame_id, tf.child_frame_id) == ('robot_1/odom', 'robot_1/base_link')
    static = mirror.publishers['/tf_static']
    assert static.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL and static.qos.depth == 1
    assert sorted(t.child_frame_id for t in static.messages[-1].transforms) == [
        'robot_1/camera_link', 'robot_1/camera_optical_frame', 'robot_1/imu_link',
        'robot_1/laser', 'robot_1/map']
    # The fleet frame holds the robot's TF root: one rviz fixed frame shows every robot.
    link = next(t for t in static.messages[-1].transforms if t.child_frame_id ==
                'robot_1/map')
    assert link.header.frame_id == 'fleet' and link.transform.rotation.w == 1.0


def test_a_root_linked_early_is_unlinked_when_it_shows_a_parent(mirror):
    # /tf_static first: base_link looks like the root until /tf says odom -> base_link.
    mirror.on_frame(echo('/tf_static', 'tf2_msgs/msg/TFMessage', ROBOT.tf_static(1.0)))
    early = mirror.publishers['/tf_static'].messages[-1].transforms
    assert ('fleet', 'robot_1/base_link') in [(t.header.frame_id, t.child_frame_id)
                                              for t in early]
    mirror.on_frame(echo('/tf', 'tf2_msgs/msg/TFMessage', ROBOT.tf(1.0)))
    links = [t.child_frame_id for t in mirror.publishers['/tf_static'].messages[-1].transforms
             if t.header.frame_id == 'fleet']
    assert links == ['robot_1/map']  # one parent per frame: base_link's is odom now


BAD_FRAMES = [
    '{not json',
    '[1, 2, 3]',
    b'\x00\x01binary',
    json.dumps({'op': 'message', 'topic': 'odom', 'type': 'nav_msgs/msg/Odometry', 'msg': {}}),
    json.dumps({'op': 'message', 'topic': '/odom', 'type': 5, 'msg': {}}),
    json.dumps({'op': 'message', 'topic': '/odom', 'type': 'nav_msgs/msg/Odometry', 'msg': 5}),
    echo('/odom', 'nav_msgs/msg/Odometry', {'header': {'stamp': {'sec': 2 ** 40}}}),
    echo('/odom', 'nav_msgs/msg/Odometry', {'pose': {'covariance': [0.0] * 10 ** 5}}),
    echo('/odom', 'nav_msgs/msg/Odometry', {'twist': {'twist': {'linear': {'x': 'fast'}}}}),
    echo('/odom', 'nav_msgs/msg/Odometry', {'surprise': True}),
    echo('/odom', 'std_msgs/msg/String', {'data': 'type changed under us'}),
    echo('/cam', 'sensor_msgs/msg/CompressedImage', {'data': '***'}),
    echo('/chatter', 'std_msgs/msg/String', {'data': {'deep': [[[[[[[[[[[]]]]]]]]]]]}}),
    echo('/secret/key', 'std_msgs/msg/String', {'data': 'not requested'}),
    json.dumps({'op': 'explode'}),
]


def test_each_bad_frame_is_dropped_alone_and_good_frames_keep_flowing(mirror):
    good = echo('/odom', 'nav_msgs/msg/Odometry', ROBOT.odometry(1.0))
    mirror.on_frame(good)
    for frame in BAD_FRAMES:
        mirror.on_frame(frame)
        mirror.on_frame(good)
    assert len(mirror.publishers['/roboflare/robot_1/odom'].messages) == len(BAD_FRAMES) + 1
    assert mirror.drops.total == len(BAD_FRAMES)
    assert set(mirror.drops.snapshot()) == {'malformed frame', 'invalid message',
                                            'type changed', 'unrequested topic'}


def test_unknown_type_is_warned_once_and_counted(mirror, caplog):
    for _ in range(5):
        mirror.on_frame(echo('/thing', 'exotic_msgs/msg/Thing', {'a': 1}))
    warnings = [r for r in caplog.records if 'exotic_msgs/msg/Thing' in r.getMessage()]
    assert len(warnings) == 1 and mirror.drops.snapshot()['unknown type'] == 5
    mirror.on_frame(echo('/chatter', 'std_msgs/msg/String', {'data': 'still here'}))
    assert mirror.publishers['/roboflare/robot_1/chatter'].messages[0].data == 'still here'


def test_latched_topics_are_published_transient_local_with_their_frames_prefixed(mirror):
    grid = {'header': {'stamp': {'sec': 5, 'nanosec': 0}, 'frame_id': 'map'},
            'info': {'resolution': 0.5, 'width': 2, 'height': 2}, 'data': [0, 100, -1, 0]}
    mirror.on_frame(echo('/map', 'nav_msgs/msg/OccupancyGrid', grid))
    mirror.on_frame(echo('/costmap', 'nav_msgs/msg/OccupancyGrid', grid))
    mirror.on_frame(echo('/robot_description', 'std_msgs/msg/String', {'data': '<robot/>'}))
    for topic in ('map', 'costmap', 'robot_description'):
        qos = mirror.publishers[f'/roboflare/robot_1/{topic}'].qos
        assert (qos.durability, qos.depth) == (DurabilityPolicy.TRANSIENT_LOCAL, 1), topic
    [occupancy] = mirror.publishers['/roboflare/robot_1/map'].messages
    assert occupancy.header.frame_id == 'robot_1/map' and list(occupancy.data) == [0, 100, -1, 0]
    [description] = mirror.publishers['/roboflare/robot_1/robot_description'].messages
    assert description.data == '<robot/>'  # the URDF as is: rviz's TF Prefix does the rest


def test_an_oversized_frame_is_refused_by_topic_and_the_stream_goes_on(caplog):
    factory, publishers = fake_publishers()
    mirror = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory,
                         max_frame_bytes=64 << 10)
    mirror.publishers = publishers
    big = {'header': {'frame_id': 'map'}, 'info': {'width': 300, 'height': 300},
           'data': [100] * 90000}  # ~360 KB of JSON, over the fixture's 64 KiB
    for _ in range(3):
        mirror.on_frame(echo('/map', 'nav_msgs/msg/OccupancyGrid', big))
    mirror.on_frame(echo('/odom', 'nav_msgs/msg/Odometry', ROBOT.odometry(1.0)))
    assert '/roboflare/robot_1/map' not in mirror.publishers
    assert len(mirror.publishers['/roboflare/robot_1/odom'].messages) == 1
    values = mirror.diagnostic_values()
    assert values['topic_drops.oversized frame'] == 3
    assert int(values['oversized_frame_bytes./map']) > 64 << 10
    [warning] = mirror.warnings()
    assert warning.startswith('/map not mirrored') and 'echo_max_frame_bytes (65536)' in warning
    assert caplog.text.count('exceeds echo_max_frame_bytes') == 1  # logged once per topic
    # The stream's own limit, past which the library closes the connection, is above it.
    assert mirror.stream_spec().options['max_frame_bytes'] > 64 << 10


def test_the_topic_of_an_oversized_frame_is_found_at_either_end():
    assert frame_topic('{"op": "message", "topic": "/map", "msg": {"data": [1, 2]}}') == '/map'
    tail_first = '{"msg": {"data": [' + '0, ' * 5000 + '0]}, "topic": "/big/cloud"}'
    assert frame_topic(tail_first) == '/big/cloud'
    assert frame_topic('{"msg": [' + '1,' * 5000 + '1]}') == '(unknown topic)'


def test_one_latched_message_holds_every_robots_static_transforms():
    make, publishers = fake_publishers()
    created = []

    def factory(cls, topic, qos):
        created.append(topic)
        return make(cls, topic, qos)
    shared = StaticTransforms(factory, qos_profile(QosRules().for_topic('/tf_static')))
    mirrors = [TopicMirror(name, f'/roboflare/{name}', f'{name}/', factory, fleet_frame='fleet',
                           static_transforms=shared) for name in ('robot_1', 'robot_2')]
    for mirror in mirrors:
        mirror.on_frame(echo('/tf_static', 'tf2_msgs/msg/TFMessage', ROBOT.tf_static(1.0)))
        mirror.on_frame(echo('/tf', 'tf2_msgs/msg/TFMessage', ROBOT.tf(1.0)))
    assert created.count('/tf_static') == 1
    static = publishers['/tf_static']
    last = {t.child_frame_id: t.header.frame_id for t in static.messages[-1].transforms}
    # A depth-1 transient-local reader (a late rviz) gets both robots from this one message.
    for name in ('robot_1', 'robot_2'):
        assert last[f'{name}/map'] == 'fleet' and last[f'{name}/laser'] == f'{name}/base_link'
        assert f'{name}/base_link' not in last  # its parent is odom, on /tf


def test_a_loop_pass_publishes_its_messages_after_it_in_order(mirror):
    # Text holding "false" takes the codec's path (a JSON boolean may be in it), the rest
    # the CDR path: one topic's messages on both paths must keep their order.
    texts = [f'{n} false' if n % 2 else str(n) for n in range(6)]

    async def one_pass_then_the_next():
        for text in texts:  # the frames of one pass of the loop
            mirror.on_frame(echo('/status', 'std_msgs/msg/String', {'data': text}))
        held = len(mirror.publishers['/roboflare/robot_1/status'].messages)
        await asyncio.sleep(0)  # the next pass: the batch's callback was queued first
        return held
    assert asyncio.run(one_pass_then_the_next()) == 0
    status = mirror.publishers['/roboflare/robot_1/status']
    assert [m.data for m in status.messages] == texts
    if fast_paths().cdr_publish:
        assert status.serialised == 3
    assert mirror.stats.published == 6


def test_stopping_publishes_what_the_pass_holds(mirror):
    async def hand_over_then_stop():
        mirror.on_frame(echo('/status', 'std_msgs/msg/String', {'data': 'last words'}))
        mirror.stop()  # then the fleet destroys the publishers: nothing may be left for them
        return [m.data for m in mirror.publishers['/roboflare/robot_1/status'].messages]
    assert asyncio.run(hand_over_then_stop()) == ['last words']


class RefusingPublisher(FakePublisher):
    def publish(self, message):
        raise RuntimeError('the rmw refused it')


def test_a_full_batch_publishes_at_once_and_a_refused_message_is_a_counted_drop():
    kept, refused = FakePublisher(), RefusingPublisher()
    drops, stats = DropCounter(logging.getLogger(__name__), 'test'), TopicStats()
    batch = PublishBatch(drops, stats, limit=3)

    async def hand_over():
        for n in range(4):
            batch.publish(refused if n == 1 else kept, n)
        return list(kept.messages)
    rclpy.init()  # publish_or_drop counts failures only while ROS runs
    try:
        assert asyncio.run(hand_over()) == [0, 2]  # the limit reached, then one more held
    finally:
        rclpy.try_shutdown()
    assert kept.messages == [0, 2, 3] and drops.snapshot() == {'publish failed': 1}
    assert stats.published == 3


def listing(count: int, pad: str = '') -> str:
    entries = ','.join(f'{{"topic": "/t{index}{pad}", "type": "std_msgs/msg/String"}}'
                       for index in range(count))
    return f'{{"op": "topics", "topics": [{entries}]}}'


@pytest.mark.parametrize('count', [MAX_LISTED_TOPICS + 1, 1_000_000])
def test_a_listing_of_too_many_topics_is_refused_counted_and_named(caplog, count):
    factory, publishers = fake_publishers()
    # echo_max_frame_bytes raised so far that a million entries (48 MB) are not refused for
    # their size first
    mirror = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory,
                         max_frame_bytes=64 << 20)

    async def scenario():
        stream = FakeStream()
        await mirror.on_connect(stream)
        frame = listing(count)
        tracemalloc.start()
        mirror.on_frame(frame)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await asyncio.sleep(0)
        return stream.sent, peak, len(frame)
    sent, peak, size = asyncio.run(scenario())
    assert sent == [{'op': 'list_topics'}]  # nothing subscribed, no publisher made
    assert mirror.drops.snapshot() == {'malformed frame': 1} and not publishers
    assert f'{count} topic entries, over the {MAX_LISTED_TOPICS}' in caplog.text
    assert peak < size // 4  # refused before it was parsed


def test_a_listing_at_the_bound_is_taken_whole(mirror):
    async def scenario():
        stream = FakeStream()
        await mirror.on_connect(stream)
        mirror.on_frame(listing(MAX_LISTED_TOPICS, pad='/with/a/longer/name'))
        await asyncio.sleep(0)
        return stream.sent
    assert len(asyncio.run(scenario())) == 1 + MAX_LISTED_TOPICS


def test_what_is_kept_per_topic_or_type_name_from_the_robot_is_bounded(caplog):
    factory, publishers = fake_publishers()
    mirror = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory,
                         max_frame_bytes=1024)
    extra = 50
    for index in range(MAX_TOPICS + extra):  # messages on ever new topics
        mirror.on_frame(echo(f'/t{index}', 'std_msgs/msg/String', {'data': 'x'}))
    for index in range(MAX_NAMED + extra):  # oversized frames of ever new topics
        mirror.on_frame(echo(f'/big{index}', 'std_msgs/msg/String', {'data': 'x' * 2000}))
    for index in range(MAX_NAMED + extra):  # ever new types that are not installed
        mirror.on_frame(echo('/odd', f'odd_msgs/msg/T{index}', {}))
    mirror.stop()
    assert len(publishers) == MAX_TOPICS and len(mirror.oversized) == MAX_NAMED
    assert len(mirror.warnings()) == MAX_NAMED
    assert mirror.drops.snapshot() == {'too many topics': extra,
                                       'oversized frame': MAX_NAMED + extra,
                                       'unknown type': MAX_NAMED + extra}
    assert caplog.text.count('its topics are not mirrored') == MAX_NAMED


@pytest.mark.parametrize('restamp', ['none', 'offset', 'receipt'])
def test_live_messages_measure_the_clock_latched_ones_do_not_and_restamp_holds_on_both_paths(
        restamp):
    factory, publishers = fake_publishers()
    clock = RobotClock(restamp)
    mirror = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory, clock=clock,
                         qos_rules=QosRules(transient_local=('/costmap',)))
    now = time.time()
    # Latched, stamped long ago and sent to each new subscriber: no sample.
    mirror.on_frame(echo('/map', 'nav_msgs/msg/OccupancyGrid', ROBOT.occupancy_grid(now - 60)))
    mirror.on_frame(echo('/costmap', 'nav_msgs/msg/Odometry', ROBOT.odometry(now - 60)))
    assert clock.offset.offset_s is None
    frame = echo('/odom', 'nav_msgs/msg/Odometry', ROBOT.odometry(now + 29.5))  # CDR
    received_from = time.time()
    mirror.on_frame(frame)
    received_by = time.time()
    # Robot time minus receipt time, whenever in that window the frame was taken.
    expected = (now + 29.5 - received_by - 1e-3, now + 29.5 - received_from + 1e-3)
    assert expected[0] <= clock.offset.offset_s <= expected[1]
    slower = ROBOT.odometry(now + 29.0)  # a message that took longer: the estimate holds
    slower['child_frame_id'] = 'base_link_true'  # "true" in the frame: the codec's path
    mirror.on_frame(echo('/odom', 'nav_msgs/msg/Odometry', slower))
    mirror.on_frame(echo('/tf', 'tf2_msgs/msg/TFMessage', ROBOT.tf(now + 29.25)))
    assert expected[0] <= clock.offset.offset_s <= expected[1]
    odometry = publishers['/roboflare/robot_1/odom']
    assert odometry.serialised == (1 if fast_paths().cdr_publish else 0)
    assert len(odometry.messages) == 2
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec / 1e9 for m in odometry.messages]
    transforms = publishers['/tf'].messages[0].transforms
    tf_stamp = transforms[0].header.stamp.sec + transforms[0].header.stamp.nanosec / 1e9
    if restamp == 'none':
        assert stamps == pytest.approx([now + 29.5, now + 29.0], abs=1e-6)
    elif restamp == 'offset':  # relative timing kept exactly, in this machine's time
        assert received_from - 2e-3 <= stamps[0] <= received_by + 2e-3
        assert stamps[1] - stamps[0] == pytest.approx(-0.5, abs=1e-6)
        assert tf_stamp - stamps[0] == pytest.approx(-0.25, abs=1e-6)
    else:
        assert all(abs(stamp - time.time()) < 0.5 for stamp in stamps + [tf_stamp])
