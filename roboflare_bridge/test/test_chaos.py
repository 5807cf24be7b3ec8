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
Chaos: everything at once against one bridge process, then: nothing lost, all recovered.

Two robots mirror topics and cameras while this machine's logs are forwarded; meanwhile the
emulator drops streams, answers 5xx and 429 bursts, delays acks, stalls streams without
closing them (a half-open link, found by pings), and goes away and comes back.
"""

from pathlib import Path
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorProcess, EmulatorThread,
    ros_subprocess_env, rss_bytes, stop_process, wait_future,
)
from roboflare_interfaces.srv import ListRobots

TALKER = Path(__file__).parent / 'peers' / 'talker.py'
RECORDS = 3600  # 18 s at 200/s: the fault schedule (about 15 s) runs inside it


def thread_count(pid):
    return len(list(Path(f'/proc/{pid}/task').iterdir()))


def steady_state(ros, bridge):
    """
    Return (threads, asyncio tasks) once every stream is connected: the least of 3 samples.

    Counting at the same state before and after the faults, and taking the least of a few
    samples, keeps transient tasks (a batch being sent) from looking like a leak.
    """
    for robot in ('robot_1', 'robot_2'):
        diagnostics_values(ros, f'robot {robot}', 60,
                           lambda v: v['_level'] == DiagnosticStatus.OK)
    diagnostics_values(ros, 'rbt_0001/logs/ws', 60, lambda v: v['connected'] == 'true')
    tasks, threads = [], []
    for _ in range(3):
        values = diagnostics_values(ros, 'control plane', 30)
        tasks.append(int(values['asyncio_tasks']))
        threads.append(thread_count(bridge.proc.pid))
    return min(threads), min(tasks)


def test_chaos(ros, tmp_path):
    emulator = EmulatorThread(robots=2, camera_fps=10, camera_size=(160, 120))
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['rbt_0001', 'rbt_0002'], 'forward_logs': True, 'robot_id': 'rbt_0001',
        'spool_dir': str(tmp_path / 'spool'), 'request_timeout_s': 3.0,
        'stream_ping_interval_s': 0.5, 'stream_ping_timeout_s': 1.0,
        'diagnostics_period_s': 0.5, 'deny_topics': ['/imu']})
    talker = subprocess.Popen([sys.executable, str(TALKER), str(RECORDS), '200'],
                              env=ros_subprocess_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    client = ros.node.create_client(ListRobots, bridge.name('list_robots'))
    faults = emulator.faults
    try:
        assert client.wait_for_service(timeout_sec=30)
        # The token travels in a file: never in the process's arguments.
        assert emulator.token not in Path(f'/proc/{bridge.proc.pid}/cmdline').read_text()
        threads_before, tasks_before = steady_state(ros, bridge)

        def chaos(seconds):
            time.sleep(seconds)  # the fault schedule's pacing, not synchronisation

        emulator.control('POST', '/_emulator/drop-streams')
        chaos(2)
        faults.fail_next, faults.fail_status = 4, 503  # a 5xx burst during a service call
        assert wait_future(client.call_async(ListRobots.Request()), 15) is not None
        faults.rate_limit_next, faults.retry_after_s = 3, 0.2
        assert wait_future(client.call_async(ListRobots.Request()), 15).success
        faults.ack_delay_ms = 800
        chaos(3)
        faults.ack_delay_ms = 0
        emulator.control('POST', '/_emulator/faults', {'stall_streams': True})
        chaos(3)
        emulator.control('POST', '/_emulator/faults', {'stall_streams': False})
        emulator.control('POST', '/_emulator/outage', {'seconds': 3})
        chaos(5)
        emulator.control('POST', '/_emulator/drop-streams')

        # Logs: every record exactly once, in order.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            uploaded = [r['msg'] for r in emulator.world.uploaded_logs.get('rbt_0001', [])
                        if r['logger'] == 'talker']
            if len(uploaded) >= RECORDS:
                break
            time.sleep(0.2)  # polling the emulator's store, with a deadline
        assert uploaded == [f'record {i}' for i in range(RECORDS)], len(uploaded)

        # Every stream reconnected and its subscriptions restored.
        threads_after, tasks_after = steady_state(ros, bridge)
        odom = Collector()
        sub = ros.node.create_subscription(Odometry, '/roboflare/robot_2/odom', odom, 10)
        odom.count(5, 30)
        ros.destroy(sub)

        # Still answering, and nothing leaked.
        assert wait_future(client.call_async(ListRobots.Request()), 15).success
        assert threads_after <= threads_before + 2, (threads_before, threads_after)
        assert tasks_after <= tasks_before + 2, (tasks_before, tasks_after)
    finally:
        ros.destroy(client)
        stop_process(talker)
        code = bridge.stop()
        emulator.close()
    assert code == 0, bridge.log()[-3000:]
    assert emulator.token not in bridge.log()


def test_flood_of_echo_frames_leaves_the_bridge_responsive_and_bounded(ros, tmp_path):
    # ~5,000 frames/s per robot: /imu 2,500, /odom, /tf 1,000 each, /scan 500.
    emulator = EmulatorProcess('--robots', '2', '--rate-scale', '50', '--log-rate', '0.1')
    # Every topic streams, subscribed or not: the robot floods.
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['rbt_0001', 'rbt_0002'], 'camera': False, 'diagnostics_period_s': 0.5,
        'mirror_on_demand': False})
    client = ros.node.create_client(ListRobots, bridge.name('list_robots'))
    try:
        assert client.wait_for_service(timeout_sec=30)
        first = diagnostics_values(ros, 'robot robot_1', 30,
                                   lambda v: int(v.get('topic_frames', 0)) > 5000)
        early = rss_bytes(bridge.proc.pid)
        started = time.monotonic()
        response = wait_future(client.call_async(ListRobots.Request()), 10)
        assert response.success and time.monotonic() - started < 5  # still responsive
        later = diagnostics_values(ros, 'robot robot_1', 30,
                                   lambda v: int(v['topic_frames']) >
                                   int(first['topic_frames']) + 20000)
        assert rss_bytes(bridge.proc.pid) - early < 64 << 20  # no backlog builds up
        assert int(later['topic_messages_published']) > 0
    finally:
        ros.destroy(client)
        code = bridge.stop()
        emulator.close()
    assert code == 0
