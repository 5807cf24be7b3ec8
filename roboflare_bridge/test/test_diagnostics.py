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
"""/diagnostics publishing: a status that fails to build is logged and counted, not fatal."""

import logging
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import LoggerLevel
from rcl_interfaces.srv import SetLoggerLevels
import rclpy
from roboflare_bridge.mirror.robot_clock import NS, RobotClock
from roboflare_bridge.node.diagnostics import clock_warning, Diagnostics, OK, status
from roboflare_dev.testing import (
    BridgeProcess, Collector, EmulatorThread, start_python, stop_process, wait_future,
    wait_until_true,
)
from sensor_msgs.msg import Image


def test_a_failing_collection_skips_one_period_and_the_next_one_publishes(caplog):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('diagnostics_test', context=context)
    calls = []

    def collect(now):
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError('deque mutated during iteration')
        yield status('camera', OK, 'fine', {'fps': 30.0})
    diagnostics = Diagnostics(node, 3600.0, collect)  # periods driven by hand below
    try:
        with caplog.at_level(logging.ERROR, logger='roboflare_bridge.node.diagnostics'):
            diagnostics.publish()
        assert diagnostics.failures == 1 and diagnostics.last is None
        assert 'collecting diagnostics failed' in caplog.text and 'deque mutated' in caplog.text
        diagnostics.publish()
        assert diagnostics.failures == 1
        [camera] = diagnostics.last.status
        assert camera.name == 'roboflare_bridge: camera'
        assert {kv.key: kv.value for kv in camera.values} == {'fps': '30.000'}
    finally:
        diagnostics.destroy()
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_diagnostics_at_100_hz_while_everything_flows(ros, tmp_path):
    # Diagnostics run on the executor's thread and read what the asyncio loop, the decode
    # thread and the /rosout callbacks write: no period may fail or lose a status.
    emulator = EmulatorThread(robots=2, rate_scale=5.0, camera_fps=30.0, log_rate_hz=50.0)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['rbt_0001', 'rbt_0002'], 'diagnostics_period_s': 0.01,
        'forward_logs': True, 'robot_id': 'rbt_0001', 'spool_dir': str(tmp_path / 'spool')})
    talker = start_python(Path(__file__).parent / 'peers' / 'talker.py', '20000', '2000')
    arrays, images = Collector(), Collector()
    subscriptions = [
        ros.node.create_subscription(DiagnosticArray, '/diagnostics', arrays, 1000),
        ros.node.create_subscription(Image, '/roboflare/robot_1/camera/image_raw', images, 2)]
    try:
        images.count(5, 30)  # decoding runs, so the decode thread writes its counters too

        def complete(array):
            return sum(s.name.startswith(f'roboflare_bridge: {name}') for s in array.status
                       for name in ('robot robot_1', 'robot robot_2', 'log forwarding')) == 3
        arrays.wait_for(lambda got: sum(map(complete, got)) >= 300, 60, '300 complete arrays')
    finally:
        for subscription in subscriptions:
            ros.destroy(subscription)
        stop_process(talker)
        assert bridge.stop() == 0, bridge.log()[-2000:]
        emulator.close()
    first = next(i for i, array in enumerate(arrays.messages) if complete(array))
    assert all(complete(array) for array in arrays.messages[first:])  # no status ever missing
    assert 'collecting diagnostics failed' not in bridge.log()


REQUEST_LOG = 'roboflare_bridge.control.api_client: GET /api/robots -> 200'  # a debug line


def test_the_package_logs_at_the_level_the_node_is_given_at_start_and_at_run_time(
        ros, tmp_path, emulator):
    params = {'robots': ['*'], 'robots_poll_interval_s': 0.5, 'camera': False,
              'remote_logs': False, 'topics': ['/odom']}
    verbose = BridgeProcess(tmp_path, emulator.url, emulator.token, params,
                            ros_args=['--log-level', 'debug'])
    quiet = BridgeProcess(tmp_path, emulator.url, emulator.token, params)
    client = ros.node.create_client(SetLoggerLevels, quiet.name('set_logger_levels'))
    try:
        assert client.wait_for_service(timeout_sec=20)
        # Both poll the org's robots every 0.5 s; only the one started at DEBUG says so ...
        wait_until_true(lambda: verbose.log().count(REQUEST_LOG) >= 6, 30, 'debug lines')
        wait_until_true(lambda: 'robots:' in quiet.log(), 30, 'the quiet one started')
        assert REQUEST_LOG not in quiet.log()
        # ... until the other one's level is set to DEBUG at run time.
        logger = quiet.node_name.lstrip('/').replace('/', '.')
        request = SetLoggerLevels.Request(levels=[LoggerLevel(name=logger, level=10)])
        assert wait_future(client.call_async(request), 15).results[0].successful
        wait_until_true(lambda: REQUEST_LOG in quiet.log(), 30, 'debug lines at run time')
    finally:
        ros.destroy(client)
        assert verbose.stop() == 0 and quiet.stop() == 0


def test_a_clock_off_by_more_than_the_bound_is_named_with_what_restamp_does():
    clock = RobotClock()
    assert clock_warning(clock, 0.5) is None  # nothing measured yet
    now = 1_800_000_000 * NS
    clock.received(now, {'header': {'stamp': {'sec': now // NS + 5, 'nanosec': 0}}})
    assert clock_warning(clock, 0.5) == ('its clock is 5.000 s ahead of this machine: stamps as '
                                         'sent (restamp: offset or receipt compensates)')
    assert clock_warning(clock, 10.0) is None
    clock.mode = 'offset'
    assert clock_warning(clock, 0.5).endswith('stamps rewritten (restamp: offset)')
    behind = RobotClock()
    behind.received(now, {'header': {'stamp': {'sec': now // NS - 2, 'nanosec': 0}}})
    assert '2.000 s behind this machine' in clock_warning(behind, 0.5)
