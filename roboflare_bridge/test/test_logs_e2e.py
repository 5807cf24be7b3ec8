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

from collections import Counter
from pathlib import Path
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from rcl_interfaces.msg import Log
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, fill_filesystem,
    ros_subprocess_env, small_filesystem, stop_process, wait_future, wait_until_true,
)
from roboflare_interfaces.srv import ListRobots
from test_log_pressure import accounted

TALKER = Path(__file__).parent / 'peers' / 'talker.py'
WRITER = Path(__file__).parent / 'peers' / 'rosout_writer.py'
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


class RosoutWriter:
    """A peers/rosout_writer.py process: /rosout records with chosen stamps, on command."""

    def __init__(self, node, logger, durability='transient_local'):
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), node, logger, durability], env=ros_subprocess_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, start_new_session=True)

    def command(self, line, timeout=60):
        """Send one command and wait for its "done"."""
        self.send(line)
        self.wait_done(line, timeout)

    def send(self, line):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()

    def wait_done(self, line, timeout=60):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        answer = self.proc.stdout.readline().strip() if ready else ''
        assert answer == 'done', f'{line!r}: no answer within {timeout}s ({answer!r})'

    def close(self):
        stop_process(self.proc)


def uploaded(emulator, logger='talker'):
    return [r['msg'] for r in emulator.world.uploaded_logs.get(ROBOT, [])
            if logger is None or r['logger'] == logger]


def wait_uploaded(emulator, count, timeout, logger='talker'):
    deadline = time.monotonic() + timeout
    while len(uploaded(emulator, logger)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f'{len(uploaded(emulator, logger))} of {count} uploaded; '
                               f'missing {missing_ranges(uploaded(emulator, logger), count)}')
        time.sleep(0.1)  # polling state held by the emulator thread, with a deadline


def missing_ranges(messages, count):
    """Return which of "record 0" .. "record <count - 1>" are missing, as ranges."""
    seen = {int(m.split()[-1]) for m in messages if m.startswith('record ')}
    ranges, start = [], None
    for i in range(count + 1):
        if i < count and i not in seen:
            start = i if start is None else start
        elif start is not None:
            ranges.append(f'{start}-{i - 1}' if i - 1 > start else str(start))
            start = None
    return ', '.join(ranges[:20]) or 'none'


def wait_logged(bridge, text, timeout):
    deadline = time.monotonic() + timeout
    while text not in bridge.log():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in the bridge's log within {timeout}s")
        time.sleep(0.1)  # polling the bridge's log file, with a deadline


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
    run_talker_through(tmp_path, emulator, kill_and_restart, count=2000, rate=200.0)


def test_full_spool_drops_the_oldest_and_says_so_upstream(ros, tmp_path, emulator):
    emulator.faults.refuse_handshakes = 503  # nothing is acknowledged for now
    bridge = start_bridge(tmp_path, emulator, spool_max_bytes=65536)
    talker = start_talker(3000, 1000.0)
    try:
        assert talker.stdout.readline().strip() == 'done'
        values = diagnostics_values(ros, 'log forwarding', 30,
                                    lambda v: int(v['spool_dropped_records']) > 0
                                    and int(v['forwarded']) == 3000)
        dropped = int(values['spool_dropped_records'])
        assert int(values['dropped_spool_full']) == dropped
        emulator.faults.refuse_handshakes = 0
        # Every record is stored, or said by the marker (all of them, if the machine was
        # slow enough for one 500-record batch to outgrow the 64 KiB spool by itself).
        wait_until_true(lambda: accounted(emulator.world.uploaded_logs.get(ROBOT, [])).get(
            ('talker', 'info')) == 3000, 60, 'records and markers for all 3000')
        messages = uploaded(emulator)
        assert messages == [f'record {i}' for i in range(dropped, 3000)]  # the newest, in order
        # The oldest went, and a marker before the rest says which, in their place.
        markers = [r['msg'] for r in emulator.world.uploaded_logs[ROBOT]
                   if r['logger'] == 'roboflare_bridge']
        assert len(markers) == 1 and re.fullmatch(
            rf'dropped {dropped} info records from /talker between \S+Z and \S+Z: spool full '
            r'\(spool_max_bytes\)', markers[0]), markers
        assert emulator.world.uploaded_logs[ROBOT][0]['logger'] == 'roboflare_bridge'
        assert 'spool full' in bridge.log() and 'markers forwarded in their place' in bridge.log()
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
        ros.destroy(sub)
        assert bridge.stop() == 0
    levels = {Log.DEBUG, Log.INFO, Log.WARN, Log.ERROR, Log.FATAL}
    for message in messages:
        assert message.name == 'robot-2.navigator' and message.file == 'navigator.py'
        assert message.function == 'step' and 40 <= message.line <= 46
        assert message.level in levels and message.msg
        assert abs(message.stamp.sec - time.time()) < 30


@pytest.mark.parametrize('restart', ['sigterm', 'sigkill'])
def test_records_are_identified_by_their_writer_not_their_stamp(ros, tmp_path, emulator,
                                                                restart):
    bridge = start_bridge(tmp_path, emulator)
    first = RosoutWriter('writer_one', 'shared')
    second = RosoutWriter('writer_two', 'shared')  # two processes, one logger name
    tool = RosoutWriter('log_tool', 'tool', 'volatile')  # a script with default QoS
    expected = {'a': 200, 'b': 200, 'z': 100, 'c': 200, 'v': 100, 'd': 300,
                'e': 200, 'y': 100, 'w': 50}
    try:
        first.command('log 200 1000 now a')
        first.command('log 200 1000 now-3600 b')  # the clock steps back an hour
        first.command('log 100 1000 zero z')  # no stamps at all
        second.command('log 200 1000 now-7200 c')
        tool.command('wait_match')
        tool.command('log 100 500 now v')
        wait_uploaded(emulator, 800, 60, logger=None)
        first.command('log 300 1000 now d')  # in the history a restarted bridge gets replayed
        wait_uploaded(emulator, 1100, 60, logger=None)
        if restart == 'sigkill':
            bridge.kill()
        else:
            assert bridge.stop(signal.SIGTERM) == 0
        bridge.start()
        first.command('log 200 1000 now-172800 e')  # stamped before anything seen so far
        second.command('log 100 1000 zero y')
        tool.command('wait_match')
        tool.command('log 50 500 now w')
        wait_uploaded(emulator, sum(expected.values()), 60, logger=None)
        values = diagnostics_values(ros, 'log forwarding', 30,
                                    lambda v: int(v['forwarded']) >= 350)
    finally:
        for writer in (first, second, tool):
            writer.close()
        assert bridge.stop() == 0, bridge.log()[-3000:]
    records = emulator.world.uploaded_logs[ROBOT]
    for prefix, count in expected.items():
        assert [r['msg'] for r in records if r['msg'].split()[0] == prefix] == [
            f'{prefix} {i}' for i in range(count)], prefix  # once each, in order
    assert len(records) == sum(expected.values())
    assert {r['logger'] for r in records} == {'shared', 'tool'}
    assert {r['ts'] for r in records if r['msg'].split()[0] in 'zy'} == {
        '1970-01-01T00:00:00.000000000Z'}  # stamps forwarded as they are
    # The restarted bridge was replayed the history it had already forwarded, and knew it.
    assert int(values['replayed_skipped']) > 0, values
    assert 'publisher of /log_tool is volatile' in bridge.log()


def test_acks_held_back_on_an_open_socket_then_resumed(tmp_path, emulator):
    # The "a minute" scaled down with the ack timeout (60 s : 10 s = 6 s : 1 s):
    # for 3 s the server stores batches but loses their acks, for 3 s more it drops them
    # without a word (a store failing silently), then it acknowledges again.
    bridge = start_bridge(tmp_path, emulator, log_ack_timeout_s=1.0)
    talker = start_talker(3000, 500.0)
    try:
        wait_uploaded(emulator, 300, 60)
        emulator.control('POST', '/_emulator/faults', {'ack_mode': 'lose'})
        wait_logged(bridge, 'no acknowledgement', 30)
        time.sleep(2.0)  # the fault's duration
        emulator.control('POST', '/_emulator/faults', {'ack_mode': 'discard'})
        time.sleep(3.0)  # the fault's duration
        emulator.control('POST', '/_emulator/faults', {'ack_mode': 'ack'})
        wait_uploaded(emulator, 3000, 90)
        assert_exactly_once_in_order(emulator, 3000)
    finally:
        stop_process(talker)
        assert bridge.stop() == 0, bridge.log()[-3000:]
    assert emulator.world.duplicate_batches > 0  # lost acks: resends stored once


def test_error_replies_are_resent_and_stored_once(tmp_path, emulator):
    emulator.faults.fail_batches_next = 3
    bridge = start_bridge(tmp_path, emulator)
    talker = start_talker(2000, 1000.0)
    try:
        wait_uploaded(emulator, 2000, 60)
    finally:
        stop_process(talker)
        assert bridge.stop() == 0, bridge.log()[-3000:]
    # Stored once each; a refused batch lands after the ones already in flight behind it.
    assert Counter(uploaded(emulator)) == Counter(f'record {i}' for i in range(2000))
    assert emulator.faults.fail_batches_next == 0 and 'refused (internal_server_error' in \
        bridge.log()


def test_a_full_disk_under_the_spool(ros, tmp_path, emulator):
    with small_filesystem(tmp_path / 'fs', 512 << 10) as fs:
        emulator.faults.ack_mode = 'discard'  # nothing acknowledged: the spool only grows
        bridge = start_bridge(tmp_path, emulator, spool_dir=str(fs / 'spool'),
                              spool_max_bytes=512 << 10, log_ack_timeout_s=1.0)
        filler, talker = None, None
        try:
            wait_logged(bridge, 'forwarding /rosout', 30)
            filler = fill_filesystem(fs)
            talker = start_talker(6000, 1000.0)
            assert talker.stdout.readline().strip() == 'done'
            values = diagnostics_values(
                ros, 'log forwarding', 30,
                lambda v: int(v['forwarded']) == 6000 and int(v['spool_dropped_records']) > 0)
            assert values['_level'] == b'\x02' and 'No space left' in values['spool_error']
            assert int(values['spool_held_bytes']) > 0
            client = ros.node.create_client(ListRobots, bridge.name('list_robots'))
            assert client.wait_for_service(timeout_sec=10)
            assert wait_future(client.call_async(ListRobots.Request()), 10).success
            ros.destroy(client)
            dropped = int(values['spool_dropped_records'])
            filler.unlink()
            emulator.faults.ack_mode = 'ack'
            # The bridge resends the oldest batch alone, its ack timeout doubled up to 30 s
            # while acks stayed away; a reconnection sends everything at once.
            emulator.control('POST', '/_emulator/drop-streams')
            wait_uploaded(emulator, 6000 - dropped, 60)
            recovered = diagnostics_values(ros, 'log forwarding', 30,
                                           lambda v: v['spool_error'] == '' and
                                           int(v['spool_records']) == 0)
        finally:
            if talker is not None:
                stop_process(talker)
            assert bridge.stop() == 0, bridge.log()[-3000:]
    assert uploaded(emulator) == [f'record {i}' for i in range(dropped, 6000)]
    assert recovered['_level'] == b'\x00'
    assert bridge.log().count('cannot write') <= 3, 'the failure is logged once, not per batch'
