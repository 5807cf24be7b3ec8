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
Robots whose clocks are off, end to end: the offset measured, said, and compensated.

The emulator's robots stamp with clocks of their own (ahead, behind, stepping); what the
bridge publishes is checked against this machine's clock, and TF as a tf2 buffer would
use it (roboflare_dev.tf_tree: the latest common time, no extrapolation).
"""

import re
import time

from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, wait_future,
)
from roboflare_dev.tf_tree import stamp_ns, TransformTree
from test_fleet_e2e import latest_status
from tf2_msgs.msg import TFMessage

NS = 1_000_000_000
FLEET = 'roboflare_fleet'
STATIC = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                    reliability=ReliabilityPolicy.RELIABLE)
OFFSETS = {'rbt_0001': 30.0, 'rbt_0002': -2.0, 'rbt_0003': 0.0}


def set_clock(emulator, robot_id, offset_s):
    emulator.control('POST', f'/_emulator/robots/{robot_id}', {'clock_offset_s': offset_s})


def measured(ros, robot, truth, timeout=20):
    """Wait until the robot's status says its offset is ``truth`` (within 50 ms); return it."""
    return diagnostics_values(
        ros, f'robot {robot}', timeout, lambda v: v['clock_offset_s'] != 'unknown'
        and abs(float(v['clock_offset_s']) - truth) <= 0.05)


def lateness(collector, last=5):
    """Return how far behind their arrival the next ``last`` messages' stamps are (s)."""
    messages = collector.count(len(collector.messages) + last, 20)
    pairs = zip(messages[-last:], collector.received_at[-last:])
    return [arrived - stamp_ns(message.header.stamp) / NS for message, arrived in pairs]


def subscribe_all(ros, robots):
    odometry = {robot: Collector() for robot in robots}
    transforms, statics = Collector(), Collector()
    made = [ros.node.create_subscription(Odometry, f'/roboflare/{robot}/odom', odometry[robot],
                                         10) for robot in robots]
    made += [ros.node.create_subscription(TFMessage, '/tf', transforms, 100),
             ros.node.create_subscription(TFMessage, '/tf_static', statics, STATIC)]
    return odometry, transforms, statics, made


def tf_tree(transforms, statics):
    tree = TransformTree(history=200)
    for message in statics.count(1, 20)[-1:]:
        tree.add(message.transforms, static=True)
    for message in transforms.messages[-600:]:
        tree.add(message.transforms)
    return tree


def test_offsets_are_measured_said_and_compensated_and_a_step_is_followed(ros, tmp_path):
    emulator = EmulatorThread(robots=3)
    for robot_id, offset in OFFSETS.items():
        set_clock(emulator, robot_id, offset)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'camera': False, 'restamp': 'offset', 'diagnostics_period_s': 0.5})
    robots = ['robot_1', 'robot_2', 'robot_3']
    odometry, transforms, statics, made = subscribe_all(ros, robots)
    logs = Collector()
    made.append(ros.node.create_subscription(Log, '/roboflare/robot_1/rosout', logs, 10))
    try:
        ahead = measured(ros, 'robot_1', 30.0)
        behind = measured(ros, 'robot_2', -2.0)
        on_time = measured(ros, 'robot_3', 0.0)
        assert ahead['_level'] == behind['_level'] == b'\x01'  # WARN, naming the fix
        said = re.search(r'its clock is ([0-9.]+) s ahead of this machine', ahead['_message'])
        assert said and abs(float(said.group(1)) - 30.0) <= 0.05, ahead['_message']
        assert 'restamp: offset' in ahead['_message'] and 'behind' in behind['_message']
        assert on_time['_level'] == b'\x00'
        status = latest_status(ros, predicate=lambda s: all(
            abs(got - want) <= 0.05 for got, want in zip(s.clock_offsets_s, OFFSETS.values())))
        assert list(status.ros_names) == robots

        # Restamped into this machine's time: stamps are no later than now, nor much earlier.
        for robot in robots:
            assert all(-0.01 <= late <= 0.2 for late in lateness(odometry[robot])), robot
        # As a tf2 buffer sees it: each robot's latest common time is now, and one time
        # they all cover exists (30 s apart, their histories would not meet).
        transforms.count(300, 20)
        tree = tf_tree(transforms, statics)
        now = time.time()
        latest = {robot: tree.latest_common_time(FLEET, f'{robot}/base_link')
                  for robot in robots}
        assert all(abs(at / NS - now) < 0.5 for at in latest.values()), latest
        common = min(latest.values())
        assert all(tree.covers(FLEET, f'{robot}/base_link', common) for robot in robots)
        # A log record keeps the robot's time in its text, with the stamp corrected.
        record = logs.count(1, 20)[-1]
        assert '[robot time ' in record.msg
        assert abs(stamp_ns(record.stamp) / NS - logs.received_at[-1]) < 0.5

        # NTP reaches robot_3 and steps its clock back 10 s: followed within 5 s.
        stepped = time.monotonic()
        set_clock(emulator, 'rbt_0003', -10.0)
        measured(ros, 'robot_3', -10.0)
        followed_s = time.monotonic() - stepped
        print(f'a 10 s step back followed in {followed_s:.1f} s')
        assert followed_s <= 5.0
        assert all(-0.01 <= late <= 0.2 for late in lateness(odometry['robot_3']))
        # robot_1 gets its time right: the WARN clears.
        set_clock(emulator, 'rbt_0001', 0.0)
        fixed = measured(ros, 'robot_1', 0.0)
        assert fixed['_level'] == b'\x00', fixed['_message']
    finally:
        ros.destroy(*made)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_stamps_as_sent_until_receipt_is_asked_at_run_time(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    set_clock(emulator, 'rbt_0001', 30.0)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'camera': False, 'remote_logs': False})
    odometry, transforms, statics, made = subscribe_all(ros, ['robot_1'])
    client = ros.node.create_client(SetParameters, bridge.name('set_parameters'))
    try:
        # none: the robot's stamps, 30 s in this machine's future, as it sent them.
        assert all(-30.2 <= late <= -29.95 for late in lateness(odometry['robot_1']))
        assert client.wait_for_service(timeout_sec=20)
        request = SetParameters.Request(parameters=[
            Parameter('restamp', value='receipt').to_parameter_msg()])
        assert wait_future(client.call_async(request), 15).results[0].successful
        odometry['robot_1'].wait_for(
            lambda got: abs(stamp_ns(got[-1].header.stamp) / NS - time.time()) < 1, 20,
            'stamps at receipt')
        assert all(0 <= late <= 0.2 for late in lateness(odometry['robot_1']))
        transforms.count(len(transforms.messages) + 100, 20)
        tree = tf_tree(transforms, statics)
        at = tree.latest_common_time(FLEET, 'robot_1/base_link')
        assert abs(at / NS - time.time()) < 0.5
    finally:
        ros.destroy(client, *made)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()
