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
"""Two emulated robots mirrored by a bridge process into this process's ROS graph."""

import json

from nav_msgs.msg import Odometry
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from roboflare_dev.testing import BridgeProcess, Collector, EmulatorThread
from sensor_msgs.msg import LaserScan
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage


@pytest.fixture(scope='module')
def emulator():
    emu = EmulatorThread(robots=2, rate_scale=2.0)
    yield emu
    emu.close()


@pytest.fixture(scope='module')
def bridge(emulator, tmp_path_factory):
    proc = BridgeProcess(tmp_path_factory.mktemp('mirror'), emulator.url, emulator.token,
                         {'robots': ['rbt_0001', 'rbt_0002'], 'deny_topics': ['/battery*'],
                          'camera': False, 'remote_logs': False},
                         namespace='/e2e_mirror')
    yield proc
    assert proc.stop() == 0, proc.log()
    assert emulator.token not in proc.log()


def subscribe(ros, cls, topic, qos=10):
    collector = Collector()
    subscription = ros.node.create_subscription(cls, topic, collector, qos)
    return collector, subscription


def test_two_robots_mirrored_with_typed_messages_and_prefixed_frames(ros, bridge):
    subs = {robot: subscribe(ros, Odometry, f'/roboflare/{robot}/odom')
            for robot in ('robot_1', 'robot_2')}
    scan, scan_sub = subscribe(ros, LaserScan, '/roboflare/robot_2/scan',
                               QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        for robot, (collector, _) in subs.items():
            odom = collector.count(3, 30)[-1]
            assert (odom.header.frame_id, odom.child_frame_id) == (f'{robot}/odom',
                                                                   f'{robot}/base_link')
            assert odom.header.stamp.sec > 1.7e9 and odom.pose.covariance[0] == 0.01
        # The robots drive different circles: their poses differ.
        a = subs['robot_1'][0].messages[-1].pose.pose.position
        b = subs['robot_2'][0].messages[-1].pose.pose.position
        assert (a.x, a.y) != (b.x, b.y)
        last_scan = scan.count(2, 30)[-1]
        assert last_scan.header.frame_id == 'robot_2/laser' and len(last_scan.ranges) == 360
    finally:
        for _, subscription in subs.values():
            ros.destroy(subscription)
        ros.destroy(scan_sub)
    names = dict(ros.node.get_topic_names_and_types())
    assert '/roboflare/robot_1/chatter' in names
    assert not any('battery' in name for name in names)  # deny_topics


def test_tf_and_late_joining_tf_static_show_both_robots(ros, bridge):
    tf, tf_sub = subscribe(ros, TFMessage, '/tf', 100)
    try:
        frames = tf.wait_for(lambda ms: {t.child_frame_id for m in ms for t in m.transforms}
                             >= {'robot_1/base_link', 'robot_2/base_link'}, 30, 'both robots')
        parents = {t.header.frame_id for m in frames for t in m.transforms}
        assert parents == {f'{robot}/{frame}' for robot in ('robot_1', 'robot_2')
                           for frame in ('map', 'odom', 'base_link')}
    finally:
        ros.destroy(tf_sub)
    # Subscribing late (like rviz) still gets every robot's whole static tree.
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    static, static_sub = subscribe(ros, TFMessage, '/tf_static', latched)
    try:
        expected = {f'{robot}/{frame}' for robot in ('robot_1', 'robot_2')
                    for frame in ('laser', 'imu_link', 'camera_link', 'camera_optical_frame')}
        static.wait_for(lambda ms: {t.child_frame_id for m in ms for t in m.transforms}
                        >= expected, 30, 'the static trees')
    finally:
        ros.destroy(static_sub)


def test_reconnect_restores_subscriptions(ros, bridge, emulator):
    chatter, sub = subscribe(ros, String, '/roboflare/robot_1/chatter')
    odom, odom_sub = subscribe(ros, Odometry, '/roboflare/robot_1/odom')
    try:
        odom.count(1, 30)
        dropped = emulator.control('POST', '/_emulator/drop-streams')['dropped']
        assert dropped >= 2
        seen = len(odom.messages)
        odom.count(seen + 5, 30)  # flowing again: resubscribed on the new connection
        chatter.count(1, 30)
        stats = emulator.control('GET', '/_emulator/stats')['streams']
        assert '/odom' in stats['rbt_0001/ros/topics/echo']['subscriptions']
    finally:
        ros.destroy(sub)
        ros.destroy(odom_sub)


def test_malformed_frames_are_dropped_while_good_ones_flow(ros, bridge, emulator):
    odom, sub = subscribe(ros, Odometry, '/roboflare/robot_2/odom')
    bad = ['{broken', json.dumps({'op': 'message', 'topic': '/odom',
                                  'type': 'nav_msgs/msg/Odometry', 'msg': {'pose': 7}}),
           json.dumps({'op': 'message', 'topic': '/weird', 'type': 'exotic_msgs/msg/T',
                       'msg': {}})]
    try:
        odom.count(1, 30)
        result = emulator.control('POST', '/_emulator/robots/rbt_0002/ros/topics/echo/inject',
                                  {'frames': bad * 20})
        assert result['connections'] == 1
        seen = len(odom.messages)
        odom.count(seen + 5, 30)
    finally:
        ros.destroy(sub)
    assert 'dropped' in bridge.log() and 'exotic_msgs/msg/T' in bridge.log()
