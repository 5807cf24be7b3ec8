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
"""Upstream logs under pressure, through a bridge process and the emulator's logs stream."""

import time

import pytest
from roboflare_dev.testing import diagnostics_values, EmulatorThread
from test_log_pressure import accounted
from test_logs_e2e import ROBOT, RosoutWriter, start_bridge


@pytest.fixture
def emulator():
    emu = EmulatorThread(robots=1)
    yield emu
    emu.close()


def stored(emulator):
    return list(emulator.world.uploaded_logs.get(ROBOT, []))


def wait_accounted(emulator, expected, timeout):
    """Wait until what the emulator stored accounts for ``expected`` {(logger, level): n}."""
    deadline = time.monotonic() + timeout
    while True:
        totals = accounted(stored(emulator))
        if all(totals.get(key, 0) >= n for key, n in expected.items()):
            return totals
        if time.monotonic() > deadline:
            raise TimeoutError(f'stored upstream: {totals}; expected {expected}')
        time.sleep(0.1)  # polling state held by the emulator thread, with a deadline


def test_errors_survive_a_full_spool_and_every_drop_is_said(ros, tmp_path, emulator):
    # Acks held back: the server stores what it gets and answers nothing, so the spool
    # fills and batches already sent are rewritten under their ids.
    emulator.faults.ack_mode = 'lose'
    bridge = start_bridge(tmp_path, emulator, spool_max_bytes=1 << 20, log_ack_timeout_s=1.0)
    writer = RosoutWriter('driver', 'driver')
    try:
        writer.command('wait_reader')
        # 2,000 a second: the bridge's /rosout reader keeps 1000 records, so it may fall
        # behind by half a second on a busy machine before DDS overwrites what it has not read.
        writer.command('log 20200 2000 now record error-every=101', timeout=120)
        values = diagnostics_values(ros, 'log forwarding', 60,
                                    lambda v: int(v['received']) >= 20200
                                    and int(v['dropped_spool_full']) > 0)
        assert int(values['spool_bytes']) <= 1 << 20
        assert values['losses_by_logger'].startswith('driver: spool full ')
        emulator.faults.ack_mode = 'ack'
        emulator.control('POST', '/_emulator/drop-streams')  # everything unacked goes again
        totals = wait_accounted(emulator, {('driver', 'info'): 20000,
                                           ('driver', 'error'): 200}, 60)
        assert totals == {('driver', 'info'): 20000, ('driver', 'error'): 200}
        errors = [r['msg'] for r in stored(emulator) if r['level'] == 'error']
        assert errors == [f'record {i}' for i in range(100, 20200, 101)]  # once, in order
        info = sum(r['level'] == 'info' for r in stored(emulator))
        assert info < 20000 - 5000  # most were dropped: said by markers only
    finally:
        writer.close()
        assert bridge.stop() == 0, bridge.log()[-3000:]
    assert 'markers forwarded in their place' in bridge.log()


def test_floods_collapse_and_rate_limits_are_said(ros, tmp_path, emulator):
    bridge = start_bridge(tmp_path, emulator, log_max_rate_per_node=200.0)
    looping = RosoutWriter('looping_driver', 'looping_driver')
    chatty = RosoutWriter('chatty', 'chatty')
    try:
        looping.command('wait_reader')
        chatty.command('wait_reader')
        looping.send('log 10000 1000 now sensor_timeout same')
        chatty.command('log 3000 1000 now line', timeout=60)
        looping.wait_done('flood', timeout=60)
        totals = wait_accounted(emulator, {('looping_driver', 'info'): 10000,
                                           ('chatty', 'info'): 3000}, 30)
        assert totals == {('looping_driver', 'info'): 10000, ('chatty', 'info'): 3000}
        records = stored(emulator)
        assert sum(r['logger'] == 'looping_driver' for r in records) <= 20
        chatty_kept = sum(r['logger'] == 'chatty' for r in records)
        assert chatty_kept <= 200 * 4 + 200  # about 3 s at 200/s and a second's burst
        markers = [r for r in records if r['logger'] == 'roboflare_bridge']
        assert markers and all('from /chatty' in r['msg'] for r in markers)
        values = diagnostics_values(ros, 'log forwarding', 15,
                                    lambda v: int(v['collapsed']) >= 9980)
        assert int(values['dropped_rate_limit']) == 3000 - chatty_kept
        assert 'looping_driver: collapsed' in values['losses_by_logger']
        assert 'chatty: rate limit' in values['losses_by_logger']
    finally:
        looping.close()
        chatty.close()
        assert bridge.stop() == 0, bridge.log()[-3000:]


def test_a_flood_across_a_kill_and_restart_is_counted_once(ros, tmp_path, emulator):
    # 100 records/s: /rosout's history (1000 records, 10 s) covers the restart.
    bridge = start_bridge(tmp_path, emulator)
    looping = RosoutWriter('looping_driver', 'looping_driver')
    try:
        looping.command('wait_reader')
        looping.send('log 600 100 now sensor_timeout same')
        wait_accounted(emulator, {('looping_driver', 'info'): 250}, 30)
        bridge.kill()  # SIGKILL mid-run: repeats counted in memory, not said yet
        bridge.start()
        looping.wait_done('flood', timeout=60)
        wait_accounted(emulator, {('looping_driver', 'info'): 600}, 30)
        # Nothing more to come (no repeat pending, nothing spooled): then the count is exact.
        diagnostics_values(ros, 'log forwarding', 15,
                           lambda v: v['pending_summaries'] == '0' and v['spool_records'] == '0')
        assert accounted(stored(emulator)) == {('looping_driver', 'info'): 600}
        assert sum(r['logger'] == 'looping_driver' for r in stored(emulator)) <= 30
    finally:
        looping.close()
        assert bridge.stop() == 0, bridge.log()[-3000:]
