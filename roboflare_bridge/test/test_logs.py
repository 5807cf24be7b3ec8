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
"""The /rosout reader, the log spool and the upstream forwarder, without ROS I/O."""

import asyncio
import itertools
import json
import os
import random
import struct

from builtin_interfaces.msg import Time
from hypothesis import given, settings, strategies as st
import pytest
from rcl_interfaces.msg import Log
from rclpy.serialization import serialize_message
from roboflare_bridge.mirror.remote_logs import log_message
from roboflare_bridge.mirror.robot_clock import NS, RobotClock
from roboflare_bridge.transport.backoff import Backoff
from roboflare_bridge.transport.wire import LogRecord, MAX_BATCH_BYTES, parse_log_record
import roboflare_bridge.upstream.forwarder as forwarder_module
from roboflare_bridge.upstream.forwarder import LogForwarder
from roboflare_bridge.upstream.rosout import (
    normalise_logger, parse_log_cdr, record_json, RosoutRecord, SeenSamples,
)
from roboflare_bridge.upstream.spool import JOURNAL_MAGIC, SampleJournal, Spool
from roboflare_dev.testing import FakeStream, fill_filesystem, small_filesystem

T0 = 1_800_000_000


def log(i, name='talker', level=Log.INFO, msg=None, sec=T0):
    return Log(stamp=Time(sec=sec, nanosec=i), level=level, name=name,
               msg=msg if msg is not None else f'record {i}', file='t.py', function='f',
               line=7)


class Writer:
    """
    A /rosout publisher as the forwarder sees it: serialised samples with their message info.

    ``gid=None`` is Jazzy (no publisher_gid in the message info); bytes are Kilted's.
    """

    _clock = itertools.count(1_700_000_000_000_000_000, 1000)

    def __init__(self, gid=None):
        self.gid = gid
        self.seq = 0
        self.history = []

    def publish(self, message):
        self.seq += 1
        info = {'source_timestamp': next(self._clock), 'received_timestamp': 0,
                'publication_sequence_number': self.seq, 'reception_sequence_number': None}
        if self.gid is not None:
            info['publisher_gid'] = {'implementation_identifier': 'rmw_fastrtps_cpp',
                                     'data': self.gid}
        sample = (serialize_message(message), info)
        self.history.append(sample)
        return sample


WRITER_KINDS = pytest.mark.parametrize('gid', [None, b'\x01\x0f' * 8],
                                       ids=['jazzy-no-gid', 'kilted-gid'])


@settings(max_examples=200, deadline=None)
@given(st.integers(-2 ** 31, 2 ** 31 - 1), st.integers(0, 2 ** 32 - 1), st.integers(0, 255),
       *[st.text(st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00'),
                 max_size=40) for _ in range(4)], st.integers(0, 2 ** 32 - 1))
def test_cdr_reader_matches_rclpy_serialisation(sec, nanosec, level, name, msg, file,
                                                function, line):
    message = Log(stamp=Time(sec=sec, nanosec=nanosec), level=level, name=name, msg=msg,
                  file=file, function=function, line=line)
    assert parse_log_cdr(serialize_message(message)) == RosoutRecord.from_message(message)


@pytest.mark.parametrize('data', [b'', b'\x00\x01\x00\x00' + bytes(8),
                                  b'\x00\x01\x00\x00' + bytes(12) + b'\xff\xff\x00\x00'])
def test_cdr_reader_refuses_truncated_data(data):
    with pytest.raises((ValueError, struct.error)):
        parse_log_cdr(data)


def test_record_json_follows_the_contract_and_keeps_stamps_as_they_are():
    record = parse_log_record(json.loads(record_json(
        RosoutRecord.from_message(log(5, level=Log.WARN)))))
    assert record == LogRecord(ts='2027-01-15T08:00:00.000000005Z', level='warn',
                               logger='talker', msg='record 5', file='t.py', function='f',
                               line=7)
    huge = json.loads(record_json(RosoutRecord.from_message(log(1, msg='x' * 100_000))))
    assert len(huge['msg']) < 70_000 and huge['msg'].endswith('[truncated]')
    zero = json.loads(record_json(RosoutRecord.from_message(log(0, sec=0))))
    assert zero['ts'] == '1970-01-01T00:00:00.000000000Z'
    before_1970 = json.loads(record_json(RosoutRecord.from_message(log(0, sec=-3600))))
    assert before_1970['ts'] == '1969-12-31T23:00:00.000000000Z'


def test_remote_record_becomes_a_log_message():
    message = log_message(parse_log_record({
        'ts': '2026-11-29T10:00:01.250Z', 'level': 'error', 'logger': 'robot-2.nav',
        'msg': 'clearing costmap', 'file': 'nav.py', 'function': 'step', 'line': 42}))
    assert (message.level, message.name, message.msg, message.file, message.function,
            message.line) == (Log.ERROR, 'robot-2.nav', 'clearing costmap', 'nav.py', 'step', 42)
    assert (message.stamp.sec % 60, message.stamp.nanosec) == (1, 250_000_000)


@pytest.mark.parametrize('mode,shifted', [('none', False), ('offset', True),
                                          ('receipt', True)])
def test_a_remote_record_is_a_clock_sample_and_restamped_as_asked(mode, shifted):
    record = parse_log_record({
        'ts': '2026-11-29T10:00:31.000Z', 'level': 'info', 'logger': 'robot-2.nav',
        'msg': 'goal reached'})
    clock = RobotClock(mode)
    sent = log_message(record).stamp
    received_ns = (sent.sec - 30) * NS  # the robot's clock is 30 s ahead
    message = log_message(record, clock, received_ns)
    assert clock.offset.offset_s == 30.0
    if shifted:
        assert (message.stamp.sec, message.stamp.nanosec) == (sent.sec - 30, 0)
        assert message.msg == 'goal reached [robot time 2026-11-29T10:00:31.000Z]'
    else:
        assert (message.stamp, message.msg) == (sent, 'goal reached')


@pytest.mark.parametrize('given,expected', [('/ns/node', 'ns.node'), ('node', 'node'),
                                            (' /node ', 'node')])
def test_node_names_match_with_or_without_a_slash(given, expected):
    assert normalise_logger(given) == expected


def test_seen_samples_forget_only_after_a_whole_generation():
    seen = SeenSamples(generation=4)
    assert all(seen.add(bytes([i])) for i in range(4))
    assert not seen.add(bytes([0]))
    assert all(seen.add(bytes([i])) for i in range(4, 8))  # 0..3 now the older generation
    assert not seen.add(bytes([3])) and not seen.add(bytes([7]))
    assert seen.add(bytes([8]))  # a third generation begins: 0..3 are forgotten
    assert seen.add(bytes([0])) and len(seen) <= 8


# -- the spool --------------------------------------------------------------------------

def test_spool_keeps_order_survives_reopening_and_bounds_its_size(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 << 10)
    for i in range(3):
        spool.add(f'b{i}', json.dumps({'n': i}), records=10, keys=bytes([i]) * 8)
    spool.remove(spool.entries[0])
    again = Spool(tmp_path, max_bytes=64 << 10)  # a restart
    assert [e.batch_id for e in again.entries] == ['b1', 'b2']
    assert json.loads(again.entries[0].frame()) == {'n': 1}
    assert again.records == 20
    assert again.previous_keys.count(bytes([0]) * 8) >= 1  # the acked batch's keys remain
    dropped = []
    for i in range(3, 40):  # frames with no layout, as an older bridge wrote: dropped whole
        dropped += again.add(f'b{i}', 'x' * 4000, records=100, keys=b'').removed
    assert again.size <= 64 << 10 and again.dropped_records == sum(e.records for e in dropped)
    assert [e.batch_id for e in dropped][:2] == ['b1', 'b2']  # the oldest go first
    ids = [e.batch_id for e in again.entries]
    assert ids == sorted(ids, key=lambda b: int(b[1:]))
    assert again.records == sum(e.records for e in again.entries)


def test_spool_sequence_never_goes_back_and_junk_is_cleaned(tmp_path):
    spool = Spool(tmp_path, 1 << 20)
    spool.add('a', '{}', 1, b'k' * 8)
    spool.remove(spool.entries[-1])  # empty again
    spool.add('b', '{}', 1, b'')
    assert spool.entries[-1].seq == 2
    (tmp_path / '000000000009.batch').write_text('not json')
    (tmp_path / '000000000010.tmp').write_text('half written')
    (tmp_path / 'state.json').write_text('{"high_water": {"talker": 5}}')  # older version
    reopened = Spool(tmp_path, 1 << 20)
    assert [e.batch_id for e in reopened.entries] == ['b']
    assert not list(tmp_path.glob('*.tmp')) and not (tmp_path / 'state.json').exists()
    reopened.sync(reopened.take_unsynced())


def test_keys_of_a_batch_survive_losing_the_journal(tmp_path):
    # SIGKILL between writing a batch and journaling its keys: the batch header has them.
    Spool(tmp_path, 1 << 20).add('a', '{}', 2, b'A' * 8 + b'B' * 8)
    for path in SampleJournal(tmp_path).paths():
        path.unlink(missing_ok=True)
    assert Spool(tmp_path, 1 << 20).previous_keys == b'A' * 8 + b'B' * 8


def test_journal_repairs_a_torn_tail_replaces_a_foreign_file_and_stays_bounded(tmp_path):
    journal = SampleJournal(tmp_path, segment_keys=4)
    journal.append(b'a' * 8 + b'b' * 8)
    with open(journal.newer, 'ab') as handle:
        handle.write(b'tor')  # a crash in the middle of an append
    assert journal.load() == b'a' * 8 + b'b' * 8
    journal.append(b'c' * 8)
    assert journal.load() == b'a' * 8 + b'b' * 8 + b'c' * 8
    for i in range(20):
        journal.append(bytes([i]) * 8)
    loaded = journal.load()
    assert 4 * 8 <= len(loaded) <= (8 + 1) * 8 and loaded.endswith(bytes([19]) * 8)
    journal.older.write_bytes(b'{"from": "another program"}')
    assert journal.load() == journal.newer.read_bytes()[len(JOURNAL_MAGIC):]
    assert not journal.older.exists()


def test_a_full_disk_holds_batches_in_memory_and_recovers_in_order(tmp_path):
    with small_filesystem(tmp_path / 'fs', 256 << 10) as fs:
        spool = Spool(fs / 'spool', max_bytes=1 << 20, held_limit=100_000)
        filler = fill_filesystem(fs)
        dropped = []
        for i in range(12):
            dropped += spool.add(f'b{i}', 'x' * 20_000, records=10,
                                 keys=bytes([i]) * 8).removed
        assert 'No space left on device' in spool.error and spool.write_failures >= 12
        assert 0 < spool.held_bytes <= 100_000
        assert spool.dropped_records == sum(e.records for e in dropped) > 0
        kept = [e.batch_id for e in spool.entries]
        assert kept == [f'b{i}' for i in range(12 - len(kept), 12)]  # the newest, in order
        assert spool.entries[0].frame() == 'x' * 20_000  # readable from memory, to send
        filler.unlink()
        spool.add('b12', 'x' * 10, records=1, keys=b'')
        assert spool.error == '' and spool.held_bytes == 0
        reopened = Spool(fs / 'spool', max_bytes=1 << 20)
        assert [e.batch_id for e in reopened.entries] == kept + ['b12']
        assert reopened.previous_keys.endswith(bytes([11]) * 8)


def test_a_spool_directory_that_cannot_be_created_is_not_fatal(tmp_path):
    blocker = tmp_path / 'not-a-directory'
    blocker.write_text('a file where the spool directory should be')
    spool = Spool(blocker / 'spool', max_bytes=1 << 20)
    assert 'Not a directory' in spool.error
    spool.add('a', '{}', 1, b'')
    assert spool.held_bytes > 0 and [e.batch_id for e in spool.entries] == ['a']
    blocker.unlink()
    spool.add('b', '{}', 1, b'')
    assert spool.error == '' and sorted(p.name for p in (blocker / 'spool').glob('*.batch')) \
        == ['000000000001.batch', '000000000002.batch']


# -- the forwarder ----------------------------------------------------------------------

def make_forwarder(tmp_path, loop, min_level='info', ignore=('/roboflare_bridge', 'noisy'),
                   **kwargs):
    return LogForwarder(loop, Spool(tmp_path, 1 << 30), min_level, list(ignore), **kwargs)


def spooled(forwarder):
    return [r['msg'] for e in forwarder.spool.entries
            for r in json.loads(e.frame())['records']]


async def feed(forwarder, samples):
    for data, info in samples:
        forwarder.on_sample(data, info)
    await asyncio.sleep(0)
    forwarder.close_batch()


def run(coro):
    return asyncio.run(coro)


async def connected(tmp_path, batches, ack_timeout_s):
    """Spool ``batches`` (record numbers each), connect a FakeStream, start the resends."""
    forwarder = make_forwarder(tmp_path, asyncio.get_running_loop(), ack_timeout_s=ack_timeout_s)
    resender = asyncio.ensure_future(forwarder.run_resends())
    writer = Writer()
    for batch in batches:
        await feed(forwarder, [writer.publish(log(i)) for i in batch])
    stream = FakeStream()
    await forwarder.on_connect(stream)
    await asyncio.sleep(0)
    return forwarder, resender, stream, writer


async def until(condition):
    while not condition():
        await asyncio.sleep(0.02)


def test_filters_levels_and_ignored_nodes(tmp_path):
    writer = Writer()

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        await feed(forwarder, [writer.publish(m) for m in (
            log(1, level=Log.DEBUG), log(2, name='roboflare_bridge'),
            log(3, name='roboflare_bridge.transport.streams'), log(4, name='noisy'),
            log(5, name='noisier'), log(6))])
        forwarder.on_sample(b'junk', {})
        return forwarder
    forwarder = run(scenario())
    assert spooled(forwarder) == ['record 5', 'record 6']
    assert forwarder.stats.filtered == 4
    assert forwarder.drops.snapshot() == {'unreadable /rosout message': 1}


def test_batches_close_by_count_bytes_and_time(tmp_path):
    writer = Writer()

    async def scenario():
        loop = asyncio.get_running_loop()
        forwarder = make_forwarder(tmp_path, loop)
        for i in range(1200):
            forwarder.on_sample(*writer.publish(log(i)))
        await asyncio.sleep(0)
        by_count = [e.records for e in forwarder.spool.entries]
        for i in range(1200, 1203):
            forwarder.on_sample(*writer.publish(log(i, msg='y' * 400_000)))
        await asyncio.sleep(0)
        started = loop.time()
        while forwarder.spool.records < 1203:
            await asyncio.sleep(0.05)
        return forwarder, by_count, loop.time() - started
    forwarder, by_count, waited = run(scenario())
    assert by_count == [500, 500]
    sizes = [e.records for e in forwarder.spool.entries]
    assert sizes[:2] == [500, 500] and sum(sizes) == 1203
    assert all(e.size < MAX_BATCH_BYTES + 20_000 for e in forwarder.spool.entries)
    assert waited <= 1.0  # the last partial batch waited at most BATCH_MAX_WAIT_S


@WRITER_KINDS
def test_records_are_told_apart_by_writer_never_by_stamp(tmp_path, gid):
    first = Writer(gid)
    second = Writer(None if gid is None else b'\x02' * 16)  # same logger, another process
    samples = ([first.publish(log(i, msg=f'a {i}')) for i in range(5)]
               + [first.publish(log(i, msg=f'b {i}', sec=T0 - 3600)) for i in range(5)]
               + [first.publish(log(0, msg='tick', sec=0)) for _ in range(5)]
               + [second.publish(log(i, msg=f'c {i}', sec=T0 - 7200)) for i in range(5)])

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        await feed(forwarder, samples)
        return forwarder
    forwarder = run(scenario())
    assert spooled(forwarder) == ([f'a {i}' for i in range(5)] + [f'b {i}' for i in range(5)]
                                  + ['tick'] * 5 + [f'c {i}' for i in range(5)])
    assert forwarder.stats.replayed_skipped == forwarder.stats.duplicates_skipped == 0


@WRITER_KINDS
def test_replayed_history_is_skipped_exactly_across_a_restart(tmp_path, gid):
    old = Writer(gid)
    other = Writer(None if gid is None else b'\x03' * 16)

    async def first_life():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        await feed(forwarder, [old.publish(log(i)) for i in range(10)]
                   + [other.publish(log(i, msg=f'other {i}')) for i in range(3)])
        forwarder.stop()

    async def second_life():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        newcomer = Writer(None if gid is None else b'\x04' * 16)  # a process started since
        # Transient-local history replays both writers; then new records, some stamped
        # before anything seen so far (a clock stepped back), some identical in content.
        await feed(forwarder, old.history + other.history
                   + [old.publish(log(i, sec=T0 - 86400)) for i in range(10, 13)]
                   + [newcomer.publish(log(i)) for i in range(3)])
        return forwarder
    run(first_life())
    forwarder = run(second_life())
    assert spooled(forwarder)[-6:] == [f'record {i}' for i in (10, 11, 12, 0, 1, 2)]
    assert forwarder.stats.replayed_skipped == 13 and forwarder.stats.forwarded == 6


def test_one_sample_on_both_subscriptions_is_forwarded_once(tmp_path):
    writer = Writer()
    samples = [writer.publish(log(i)) for i in range(4)]

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        # The transient-local and the volatile reader get the same samples, in any order.
        await feed(forwarder, samples[:2] + samples + samples[2:])
        return forwarder
    forwarder = run(scenario())
    assert spooled(forwarder) == [f'record {i}' for i in range(4)]
    assert forwarder.stats.duplicates_skipped == 4 and forwarder.stats.replayed_skipped == 0


def test_volatile_reader_copies_wait_for_the_transient_local_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(forwarder_module, 'VOLATILE_HOLD_S', 0.0)  # released when asked
    latched, script = Writer(), Writer(b'\x05' * 16)
    history = [latched.publish(log(i)) for i in range(3)]
    scripted = [script.publish(log(i, name='tool', msg=f'tool {i}')) for i in range(2)]

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        # A newly matched transient-local writer: its live sample 2 reaches the volatile
        # reader first; the script's samples come through the volatile reader only.
        for sample in [history[2], scripted[0], scripted[1]]:
            forwarder.on_volatile_sample(*sample)
        for sample in history:  # the transient-local reader catches up, in order
            forwarder.on_sample(*sample)
        forwarder.release_volatile()
        await asyncio.sleep(0)
        forwarder.close_batch()
        return forwarder
    forwarder = run(scenario())
    assert spooled(forwarder) == ['record 0', 'record 1', 'record 2', 'tool 0', 'tool 1']
    assert forwarder.stats.duplicates_skipped == 1


def test_sends_in_order_resends_after_reconnect_and_removes_on_ack(tmp_path):
    writer = Writer()

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        for batch in range(12):
            await feed(forwarder, [writer.publish(log(batch * 3 + i)) for i in range(3)])
        first = FakeStream()
        await forwarder.on_connect(first)
        await asyncio.sleep(0)
        assert len(first.sent) == 8  # the in-flight window
        for frame in first.sent[:3]:
            forwarder.on_frame(json.dumps({'type': 'ack', 'id': frame['id']}))
        await asyncio.sleep(0)
        forwarder.on_disconnect(first)
        second = FakeStream()
        await forwarder.on_connect(second)
        await asyncio.sleep(0)
        for frame in second.sent:
            forwarder.on_frame(json.dumps({'type': 'ack', 'id': frame['id']}))
        await asyncio.sleep(0)
        for frame in second.sent[8:]:
            forwarder.on_frame(json.dumps({'type': 'ack', 'id': frame['id']}))
        await asyncio.sleep(0)
        return forwarder, first, second
    forwarder, first, second = run(scenario())
    resent = [f['id'] for f in second.sent]
    assert resent[:5] == [f['id'] for f in first.sent[3:8]]  # unacked ones first, in order
    records = [r['msg'] for f in first.sent[:3] + second.sent for r in f['records']]
    assert records == [f'record {i}' for i in range(36)]
    assert forwarder.spool.records == 0 and forwarder.stats.acked_records == 36
    assert forwarder.stats.in_flight == 0 and forwarder.stats.oldest_unacked_since is None


def test_a_missing_ack_makes_the_oldest_a_probe_then_the_rest_go_in_order(tmp_path):
    async def scenario():
        loop = asyncio.get_running_loop()
        forwarder, resender, stream, writer = await connected(
            tmp_path, [(0, 1), (2, 3), (4, 5)], ack_timeout_s=0.2)
        # The server keeps the socket open and never acknowledges: the oldest goes twice.
        await until(lambda: len(stream.sent) >= 5)
        await feed(forwarder, [writer.publish(log(6))])  # logged meanwhile: held back
        await asyncio.sleep(0.05)
        held_back = len(stream.sent)
        in_flight = forwarder.stats.in_flight
        waited = loop.time() - forwarder.stats.oldest_unacked_since
        forwarder.on_frame(json.dumps({'type': 'ack', 'id': stream.sent[0]['id']}))
        await asyncio.sleep(0)
        for frame in stream.sent[5:]:
            forwarder.on_frame(json.dumps({'type': 'ack', 'id': frame['id']}))
        sent = len(stream.sent)
        await asyncio.sleep(0.5)  # nothing more may be resent once acknowledged
        resender.cancel()
        return forwarder, stream, held_back, in_flight, waited, sent
    forwarder, stream, held_back, in_flight, waited, sent = run(scenario())
    ids = [frame['id'] for frame in stream.sent]
    assert len(set(ids[:3])) == 3 and ids[3] == ids[4] == ids[0]  # the probe, alone
    first, second, third = stream.sent_at[0], stream.sent_at[3], stream.sent_at[4]
    # The timeout runs from the hand-over, a few ms before FakeStream stamps the send.
    slack = 0.01
    assert second - first >= 0.2 - slack and third - second >= 0.4 - slack  # it doubled
    assert held_back == 5 and in_flight == 3 and waited >= 0.6
    # Its ack sends the other two again, in order, and only then the batch held back.
    assert ids[5:7] == ids[1:3] and stream.sent[7]['records'][0]['msg'] == 'record 6'
    assert len(stream.sent) == sent == 8
    assert forwarder.stats.resends == 4 and forwarder.stats.ack_timeouts == 2
    assert forwarder.spool.records == 0 and forwarder.stats.acked_records == 7


class HighestDraw(random.Random):
    """Backoff delays at their bound: a refused batch waits exactly 0.5 s."""

    def uniform(self, a, b):
        return b


def test_while_acks_are_missing_a_refused_oldest_batch_is_not_overtaken(
        tmp_path, monkeypatch):
    monkeypatch.setattr(forwarder_module, 'retry_backoff',
                        lambda: Backoff(initial=0.5, cap=30.0, rng=HighestDraw()))

    async def scenario():
        forwarder, resender, stream, _ = await connected(tmp_path, [(0,), (1,), (2,)],
                                                         ack_timeout_s=0.2)
        refused = stream.sent[0]['id']  # the others' acks never come
        forwarder.on_frame(json.dumps({'type': 'error', 'id': refused, 'error': {
            'code': 'internal_server_error', 'message': 'later'}}))
        await asyncio.wait_for(until(lambda: len(stream.sent) >= 4), 10)
        resent_alone = [frame['id'] for frame in stream.sent[3:]]
        forwarder.on_frame(json.dumps({'type': 'ack', 'id': refused}))
        await asyncio.sleep(0)
        for frame in stream.sent[4:]:
            forwarder.on_frame(json.dumps({'type': 'ack', 'id': frame['id']}))
        resender.cancel()
        return forwarder, stream, resent_alone
    forwarder, stream, resent_alone = run(scenario())
    ids = [frame['id'] for frame in stream.sent]
    # The younger two timed out first, but the refused oldest went alone, after its
    # backoff, and they followed it in order once it was acknowledged.
    assert resent_alone == [ids[0]] and ids[4:] == ids[1:3]
    assert stream.sent_at[3] - stream.sent_at[0] >= 0.4  # the backoff, not the ack timeout
    assert forwarder.spool.records == 0 and forwarder.stats.acked_records == 3
    assert forwarder.stats.ack_timeouts >= 1 and forwarder.stats.error_replies == 1


class StoringServer:
    """
    A logs/ws server whose store fails silently, then recovers.

    The first ``recovers_after`` frames are dropped without a word; after them batches are
    stored in arrival order, once per id, and each is acknowledged.
    """

    def __init__(self, forwarder, recovers_after):
        self.forwarder = forwarder
        self.recovers_after = recovers_after
        self.received = 0
        self.stored_ids = set()
        self.records = []

    async def send(self, frame):
        batch = json.loads(frame)
        self.received += 1
        if self.received > self.recovers_after:
            if batch['id'] not in self.stored_ids:
                self.stored_ids.add(batch['id'])
                self.records += [r['msg'] for r in batch['records']]
            ack = json.dumps({'type': 'ack', 'id': batch['id']})
            asyncio.get_running_loop().call_soon(self.forwarder.on_frame, ack)
        return True


def test_a_store_recovering_between_resends_gets_each_writer_s_order(tmp_path):
    writer = Writer()

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop(), ack_timeout_s=0.2)
        resender = asyncio.ensure_future(forwarder.run_resends())
        # Two batches sent 0.1 s apart: their ack timers run 0.1 s apart too. The store
        # comes back just after the first resend of the older one was lost.
        server = StoringServer(forwarder, recovers_after=3)
        await feed(forwarder, [writer.publish(log(i)) for i in range(3)])
        await forwarder.on_connect(server)
        await asyncio.sleep(0.1)
        await feed(forwarder, [writer.publish(log(i)) for i in range(3, 6)])
        await asyncio.wait_for(until(lambda: forwarder.spool.records == 0), 10)
        resender.cancel()
        return server
    server = run(scenario())
    assert server.records == [f'record {i}' for i in range(6)]


def test_error_replies_are_resent_and_bad_requests_dropped(tmp_path):
    async def scenario():
        forwarder, resender, stream, _ = await connected(tmp_path, [(0,), (1,), (2,)],
                                                         ack_timeout_s=30)
        bad, busy, fine = stream.sent
        forwarder.on_frame(json.dumps({'type': 'error', 'id': bad['id'],
                                       'error': {'code': 'bad_request', 'message': 'no'}}))
        forwarder.on_frame(json.dumps({'type': 'error', 'id': busy['id'],
                                       'error': {'code': 'internal_server_error',
                                                 'message': 'later'}}))
        forwarder.on_frame(json.dumps({'type': 'ack', 'id': fine['id']}))
        forwarder.on_frame('{"type": "ack"}')  # malformed: counted, ignored
        while len(stream.sent) < 4:  # the refused batch again, after a short backoff
            await asyncio.sleep(0.02)
        forwarder.on_frame(json.dumps({'type': 'ack', 'id': busy['id']}))
        resender.cancel()
        return forwarder, stream, busy
    forwarder, stream, busy = run(scenario())
    assert stream.sent[3]['id'] == busy['id'] and stream.sent_at[3] - stream.sent_at[1] < 5
    assert forwarder.spool.records == 0 and forwarder.stats.rejected_records == 1
    assert forwarder.stats.error_replies == 1 and forwarder.stats.resends == 1
    assert set(forwarder.drops.snapshot()) == {'rejected batch', 'malformed reply'}


def test_flush_spools_what_is_in_memory(tmp_path):
    writer = Writer()

    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        forwarder.on_sample(*writer.publish(log(1)))
        await forwarder.flush()
        forwarder.stop()
    run(scenario())
    assert Spool(tmp_path, 1 << 20).records == 1
    assert os.path.getsize(tmp_path / 'samples.1') == len(JOURNAL_MAGIC) + 8
