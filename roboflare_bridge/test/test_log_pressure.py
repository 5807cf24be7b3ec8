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
"""Upstream logs under pressure: eviction by level, markers, floods; no ROS graph."""

import asyncio
import json
import re

from rcl_interfaces.msg import Log
from roboflare_bridge.upstream.forwarder import LogForwarder
from roboflare_bridge.upstream.pressure import (
    Batch, BatchLayout, evict_level, FloodGuard, Loss, merge_batches, SPOOL_FULL,
)
from roboflare_bridge.upstream.rosout import RosoutRecord
from roboflare_bridge.upstream.spool import Spool
from roboflare_dev.testing import FakeStream, fill_filesystem, small_filesystem
from test_logs import log, Writer

MARKER = re.compile(r'dropped (\d+) (\w+) records from (\S+) between (\S+) and (\S+): (.+)')
REPEATED = re.compile(r'last message repeated (\d+) times')


def record(logger, level, ts, msg='m'):
    return {'ts': ts, 'level': level, 'logger': logger, 'msg': msg, 'file': '',
            'function': '', 'line': 0}


def ts(second):
    return f'2027-01-01T00:00:{second:02d}.000000000Z'


def accounted(records, logger=None, level=None):
    """Return {(logger, level): records delivered + said by markers and repeat summaries}."""
    totals = {}
    for r in records:
        marker = MARKER.fullmatch(r['msg']) if r['logger'] == 'roboflare_bridge' else None
        if marker:
            key, count = (marker.group(3).lstrip('/'), marker.group(2)), int(marker.group(1))
        else:
            repeated = REPEATED.fullmatch(r['msg'])
            key, count = (r['logger'], r['level']), int(repeated.group(1)) if repeated else 1
        totals[key] = totals.get(key, 0) + count
    return totals


# -- eviction and merging, on one batch -----------------------------------------------------

def test_eviction_replaces_one_level_by_a_marker_per_logger_in_place():
    batch = Batch([record('a', 'info', ts(1)), record('b', 'error', ts(2)),
                   record('a', 'info', ts(3), 'last message repeated 9 times'),
                   record('c', 'info', ts(4)), record('b', 'warn', ts(5))],
                  BatchLayout('ieiiw', weights={2: 9}))
    evicted, losses = evict_level(batch, 'i', SPOOL_FULL)
    assert evicted.layout.levels == 'memw'
    assert [r['msg'] for r in evicted.records] == [
        f'dropped 10 info records from /a between {ts(1)} and {ts(3)}: spool full '
        '(spool_max_bytes)', 'm',
        f'dropped 1 info records from /c between {ts(4)} and {ts(4)}: spool full '
        '(spool_max_bytes)', 'm']
    assert evicted.records[0]['level'] == 'warn' and evicted.records[0]['ts'] == ts(1)
    assert sorted((loss.logger, loss.count) for loss in losses) == [('a', 10), ('c', 1)]
    # Evicted again at the next level: the markers stay, and merge with new ones.
    again, losses = evict_level(evicted, 'w', SPOOL_FULL)
    assert again.layout.levels == 'memm' and sum(loss.count for loss in losses) == 1
    assert accounted(again.records) == accounted(batch.records)


def test_merging_batches_merges_markers_of_one_kind_and_keeps_order():
    older, _ = evict_level(Batch([record('a', 'info', ts(1)), record('b', 'error', ts(2))],
                                 BatchLayout('ie')), 'i', SPOOL_FULL)
    newer, _ = evict_level(Batch([record('a', 'info', ts(3)), record('a', 'debug', ts(4))],
                                 BatchLayout('id')), 'i', SPOOL_FULL)
    merged = merge_batches(older, newer)
    assert merged.layout.levels == 'med'
    assert merged.layout.losses[0] == Loss('a', 'info', SPOOL_FULL, 2, ts(1), ts(3))
    assert [r['level'] for r in merged.records] == ['warn', 'error', 'debug']
    assert merge_batches(newer, older).layout.losses[0].count == 2
    # The layout survives a spool file's header.
    header = json.loads(json.dumps(merged.layout.to_header()))
    assert BatchLayout.from_header(header) == merged.layout


# -- floods ---------------------------------------------------------------------------------

def flood(guard, records, period, expire_every=100):
    """Admit records ``period`` s apart (virtual time); return what would be batched."""
    batched = []
    said = []
    for i, (key, rec) in enumerate(records):
        now = i * period
        forward = guard.admit(key, rec, now, said)
        batched += said
        said.clear()
        if forward:
            batched.append(('record', rec, key))
        if i % expire_every == 0:
            guard.expire(now, said)
            batched += said
            said.clear()
    guard.flush(said)
    return batched + said


def rosout(i, name='driver', msg='same', level=Log.INFO):
    record = RosoutRecord(T0 + i // 1000, i % 1000, level, name, msg, 'drv.cpp', 'loop', 42)
    return i.to_bytes(8, 'big'), record


T0 = 1_800_000_000


def keys_of(batched):
    keys = b''.join(item[2] if isinstance(item, tuple) else item.keys for item in batched)
    return [keys[i:i + 8] for i in range(0, len(keys), 8)]


def test_an_identical_line_at_1_khz_is_forwarded_once_then_once_a_window():
    records = [rosout(i) for i in range(10_000)]
    batched = flood(FloodGuard(1.0, 0), records, 0.001)
    summaries = [item for item in batched if not isinstance(item, tuple)]
    assert sum(isinstance(item, tuple) for item in batched) == 1
    assert 9 <= len(summaries) <= 11
    assert all(REPEATED.fullmatch(json.loads(s.text)['msg']) for s in summaries)
    assert 1 + sum(s.weight for s in summaries) == 10_000
    # Each record's sample key travels once: with it, or with the summary that says it.
    assert sorted(keys_of(batched)) == sorted(key for key, _ in records)


def test_a_different_line_ends_a_run_and_its_summary_comes_first():
    guard = FloodGuard(1.0, 0)
    records = [rosout(i) for i in range(5)] + [rosout(5, msg='other'), rosout(6, name='x')]
    batched = flood(guard, records, 0.001, expire_every=10 ** 9)
    kinds = [item[1].msg if isinstance(item, tuple) else json.loads(item.text)['msg']
             for item in batched]
    assert kinds == ['same', 'last message repeated 4 times', 'other', 'same']
    # A repeat after a quiet window is a new run: forwarded again.
    guard = FloodGuard(1.0, 0)
    said = []
    assert guard.admit(*rosout(0), 0.0, said) and not guard.admit(*rosout(1), 0.5, said)
    guard.expire(1.0, said)
    assert len(said) == 1 and said[0].weight == 1
    guard.expire(2.0, said)  # nothing repeated in that window: the run ended
    assert guard.admit(*rosout(2), 2.1, said)


def test_rate_limit_drops_are_said_by_markers_that_add_up():
    records = [rosout(i, msg=f'distinct {i}', level=Log.WARN if i % 3 else Log.INFO)
               for i in range(2000)]
    batched = flood(FloodGuard(0.0, 10.0), records, 0.001)
    forwarded = [item for item in batched if isinstance(item, tuple)]
    markers = [item for item in batched if not isinstance(item, tuple)]
    assert 25 <= len(forwarded) <= 31  # a second's burst, then 10/s for 2 s
    assert all(m.loss is not None and m.level == 'm' for m in markers)
    assert len(markers) <= 2 * 4  # at most one a second per level
    assert len(forwarded) + sum(m.loss.count for m in markers) == 2000
    assert sorted(keys_of(batched)) == sorted(key for key, _ in records)


# -- the forwarder and its spool ------------------------------------------------------------

def make_forwarder(tmp_path, loop, max_bytes, **kwargs):
    return LogForwarder(loop, Spool(tmp_path, max_bytes), 'info', ['/roboflare_bridge'],
                        **kwargs)


async def log_with_errors(forwarder, count, error_every, every_batch=500):
    """Log ``count`` records "record <i>", each ``error_every``-th an error, in batches."""
    writer = Writer()
    for i in range(count):
        level = Log.ERROR if i % error_every == error_every - 1 else Log.INFO
        forwarder.on_sample(*writer.publish(log(i, level=level)))
        if i % every_batch == every_batch - 1:
            await asyncio.sleep(0)  # the loop drains the inbox into batches
    await forwarder.flush()


def spooled_records(forwarder):
    return [r for e in forwarder.spool.entries for r in json.loads(e.frame())['records']]


def test_a_full_spool_drops_info_before_errors_and_says_so(tmp_path):
    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop(), 128 << 10)
        await log_with_errors(forwarder, 6000, 100)
        return forwarder
    forwarder = run(scenario())
    records = spooled_records(forwarder)
    spool = forwarder.spool
    assert spool.size <= 128 << 10 and spool.dropped_records > 4000
    errors = [r['msg'] for r in records if r['level'] == 'error']
    assert errors == [f'record {i}' for i in range(99, 6000, 100)]  # every one, in order
    assert accounted(records) == {('talker', 'info'): 5940, ('talker', 'error'): 60}
    values = forwarder.diagnostic_values()
    assert values['dropped_spool_full'] == spool.dropped_records
    assert values['losses_by_logger'] == f'talker: spool full {spool.dropped_records}'
    # The newest info records are kept, the oldest went: oldest first within a level.
    kept = [int(r['msg'].split()[1]) for r in records if r['level'] == 'info']
    assert kept == sorted(kept) and kept[-1] == 5998
    # A restart reads the layouts back: eviction goes on where it stopped.
    reopened = Spool(tmp_path, 128 << 10)
    assert [e.layout for e in reopened.entries] == [e.layout for e in spool.entries]


def test_a_spool_of_errors_only_drops_the_oldest_errors_into_a_marker(tmp_path):
    writer = Writer()

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop(), 64 << 10)
        for i in range(3000):
            forwarder.on_sample(*writer.publish(log(i, level=Log.ERROR)))
        await forwarder.flush()
        return forwarder
    records = spooled_records(run(scenario()))
    assert MARKER.fullmatch(records[0]['msg']).group(2) == 'error'
    assert accounted(records) == {('talker', 'error'): 3000}
    errors = [int(r['msg'].split()[1]) for r in records if r['level'] == 'error']
    assert errors == list(range(3000 - len(errors), 3000))


def test_rewritten_batches_add_up_whichever_version_the_server_stored(tmp_path):
    # A server that stores the first version of each batch id it sees and acknowledges
    # nothing, until the end: the bridge rewrites batches it already sent (same id), and
    # whichever version got stored, records and markers add up exactly.
    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop(), 96 << 10)
        stream = FakeStream()
        await forwarder.on_connect(stream)
        await log_with_errors(forwarder, 8000, 200, every_batch=250)
        forwarder.on_disconnect(stream)
        final = FakeStream()
        await forwarder.on_connect(final)
        for _ in range(100):
            await asyncio.sleep(0)
            for frame in final.sent[len(acked):]:
                acked.append(frame['id'])
                forwarder.on_frame(json.dumps({'type': 'ack', 'id': frame['id']}))
            if not forwarder.spool.entries:
                break
        return forwarder, stream.sent + final.sent
    acked = []
    forwarder, frames = run(scenario())
    stored = {}
    for frame in frames:
        stored.setdefault(frame['id'], frame['records'])
    records = [r for batch in stored.values() for r in batch]
    assert not forwarder.spool.entries
    assert forwarder.spool.dropped_records > 0
    assert accounted(records) == {('talker', 'info'): 7960, ('talker', 'error'): 40}


def test_markers_and_summaries_are_never_collapsed_or_rate_limited(tmp_path):
    writer = Writer()

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop(), 1 << 30,
                                   collapse_window_s=1.0, max_rate_per_node=5.0)
        loop = asyncio.get_running_loop()
        for i in range(400):  # two nodes, one repeating, one distinct: both over the limit
            forwarder.on_sample(*writer.publish(log(0, name='repeater', msg='same')))
            forwarder.on_sample(*writer.publish(log(i, name='chatty')))
        forwarder._drain()
        started = loop.time()
        while loop.time() - started < 1.3:  # the windows close: expire_floods says them
            forwarder.expire_floods()
            await asyncio.sleep(0.1)
        await forwarder.flush()
        return forwarder
    forwarder = run(scenario())
    records = spooled_records(forwarder)
    assert accounted(records) == {('repeater', 'info'): 400, ('chatty', 'info'): 400}
    markers = [r for r in records if r['logger'] == 'roboflare_bridge']
    assert markers and all('rate limit (log_max_rate_per_node)' in r['msg'] for r in markers)
    values = forwarder.diagnostic_values()
    assert values['collapsed'] == 399 and values['dropped_rate_limit'] == 395
    assert 'repeater: collapsed 399' in values['losses_by_logger']


def run(coro):
    return asyncio.run(coro)


def test_batches_held_in_memory_while_the_disk_refuses_drop_by_level_too(tmp_path):
    with small_filesystem(tmp_path / 'fs', 256 << 10) as fs:
        filler = fill_filesystem(fs)

        async def scenario():
            forwarder = LogForwarder(asyncio.get_running_loop(),
                                     Spool(fs / 'spool', 1 << 30, held_limit=96 << 10),
                                     'info', ['/roboflare_bridge'])
            await log_with_errors(forwarder, 4000, 100)
            return forwarder
        forwarder = run(scenario())
        spool = forwarder.spool
        assert spool.error and spool.held_bytes <= 96 << 10
        records = spooled_records(forwarder)
        assert accounted(records) == {('talker', 'info'): 3960, ('talker', 'error'): 40}
        assert any('the disk refuses writes' in r['msg'] for r in records)
        assert forwarder.diagnostic_values()['dropped_memory_full'] == spool.dropped_records
        filler.unlink()
        spool.write_held()  # the disk takes them again, markers and all
        assert not spool.error and accounted(
            [r for e in Spool(fs / 'spool', 1 << 30).entries
             for r in json.loads(e.frame())['records']]) == accounted(records)
