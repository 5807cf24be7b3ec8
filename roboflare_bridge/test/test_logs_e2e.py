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
"""Upstream log forwarding and downstream log mirroring, through a bridge process."""

from pathlib import Path
import subprocess
import sys
import time

import pytest
from rcl_interfaces.msg import Log
from support import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, ros_subprocess_env,
    stop_process,
)

TALKER = Path(__file__).parent / 'peers' / 'talker.py'
ROBOT = 'rbt_0001'


@pytest.fixture
def emulator():
    emu = EmulatorThread(robots=2, log_rate_hz=5.0)
    yield emu
    emu.close()


def start_bridge(tmp_path, emulator, **params):
    base = {'forward_logs': True, 'robot_id': ROBOT, 'spool_dir': str(tmp_path / 'spool'),
            'log_ignore_nodes': ['/noisy'], 'diagnostics_period_s': 0.5,
            'remote_logs': False, 'camera': False}
    base.update(params)
    return BridgeProcess(tmp_path, emulator.url, emulator.token, base)


def start_talker(count, rate, name='talker'):
    return subprocess.Popen([sys.executable, str(TALKER), str(count), str(rate), name],
                            env=ros_subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def uploaded(emulator, logger='talker'):
    return [r['msg'] for r in emulator.world.uploaded_logs.get(ROBOT, [])
            if r['logger'] == logger]


def wait_uploaded(emulator, count, timeout, logger='talker'):
    deadline = time.monotonic() + timeout
    while len(uploaded(emulator, logger)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f'{len(uploaded(emulator, logger))} of {count} uploaded')
        time.sleep(0.1)  # polling state held by the emulator thread, with a deadline


def assert_exactly_once_in_order(emulator, count):
    messages = uploaded(emulator)
    assert messages == [f'record {i}' for i in range(count)], (
        f'{len(messages)} uploaded, {len(set(messages))} distinct')
    loggers = {r['logger'] for r in emulator.world.uploaded_logs[ROBOT]}
    assert loggers == {'talker'}, loggers  # not the bridge itself, not noisy, no debug


def run_talker_through(tmp_path, emulator, disturb, count=10_000, rate=1000.0):
    bridge = start_bridge(tmp_path, emulator)
    talker = None
    try:
        talker = start_talker(count, rate)
        wait_uploaded(emulator, count // 4, 60)
        disturb(bridge)
        wait_uploaded(emulator, count, 120)
        assert_exactly_once_in_order(emulator, count)
    finally:
        if talker is not None:
            stop_process(talker)
        assert bridge.stop() == 0, bridge.log()[-3000:]
    assert emulator.token not in bridge.log()
    return bridge


def test_logs_stream_dropped_mid_way(tmp_path, emulator):
    def drop(bridge):
        for _ in range(3):
            emulator.control('POST', '/_emulator/drop-streams')
            time.sleep(1.0)  # spacing the faults over the run
    run_talker_through(tmp_path, emulator, drop)


def test_emulator_down_for_ten_seconds(tmp_path, emulator):
    def outage(bridge):
        emulator.control('POST', '/_emulator/outage', {'seconds': 10})
    run_talker_through(tmp_path, emulator, outage)


def test_bridge_killed_and_restarted(tmp_path, emulator):
    def kill_and_restart(bridge):
        bridge.kill()  # SIGKILL: no flush, no goodbye
        bridge.start()
    # A node's /rosout history keeps its last 1000 records for 10 s: what the bridge had
    # not spooled (<= 0.25 s) plus what was logged while it restarted (a few seconds on a
    # loaded machine) must fit in that. At 200 records/s the margin is 5 s.
    run_talker_through(tmp_path, emulator, kill_and_restart, rate=200.0)


def test_full_spool_drops_the_oldest_and_counts_them(ros, tmp_path, emulator):
    emulator.faults.refuse_handshakes = 503  # nothing is acknowledged for now
    bridge = start_bridge(tmp_path, emulator, spool_max_bytes=65536)
    talker = start_talker(3000, 1000.0)
    try:
        assert talker.stdout.readline().strip() == 'done'
        values = diagnostics_values(ros, 'log forwarding', 30,
                                    lambda v: int(v['spool_dropped_records']) > 0
                                    and int(v['forwarded']) == 3000)
        dropped = int(values['spool_dropped_records'])
        emulator.faults.refuse_handshakes = 0
        wait_uploaded(emulator, 3000 - dropped, 60)
        messages = uploaded(emulator)
        first = int(messages[0].split()[1])
        assert first == dropped  # the oldest went, the newest arrived, in order
        assert messages == [f'record {i}' for i in range(dropped, 3000)]
        assert 'spool full' in bridge.log() and 'dropped the' in bridge.log()
    finally:
        stop_process(talker)
        assert bridge.stop() == 0


def test_remote_records_appear_on_the_local_topic(ros, tmp_path, emulator):
    bridge = start_bridge(tmp_path, emulator, forward_logs=False, remote_logs=True,
                          robots=['rbt_0002'], topics=['/chatter'])
    collector = Collector()
    sub = ros.node.create_subscription(Log, '/roboflare/robot_2/rosout', collector, 50)
    try:
        messages = collector.count(3, 30)
    finally:
        ros.node.destroy_subscription(sub)
        assert bridge.stop() == 0
    levels = {Log.DEBUG, Log.INFO, Log.WARN, Log.ERROR, Log.FATAL}
    for message in messages:
        assert message.name == 'robot-2.navigator' and message.file == 'navigator.py'
        assert message.function == 'step' and 40 <= message.line <= 46
        assert message.level in levels and message.msg
        assert abs(message.stamp.sec - time.time()) < 30
