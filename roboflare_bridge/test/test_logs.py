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
"""The log spool, the upstream forwarder and the downstream conversion, without ROS I/O."""

import asyncio
import json
import os
import struct

from builtin_interfaces.msg import Time
from hypothesis import given, settings, strategies as st
import pytest
from rcl_interfaces.msg import Log
from rclpy.serialization import serialize_message
from roboflare_bridge.frames import LogRecord, MAX_BATCH_BYTES, parse_log_record
from roboflare_bridge.logs import (
    log_message, LogForwarder, normalise_logger, parse_log_cdr, record_json, RosoutRecord,
    Spool,
)
from support import FakeStream


def log(i, name='talker', level=Log.INFO, msg=None, sec=1_800_000_000):
    return Log(stamp=Time(sec=sec, nanosec=i), level=level, name=name,
               msg=msg if msg is not None else f'record {i}', file='t.py', function='f',
               line=7)


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


def test_record_json_follows_the_contract():
    record = parse_log_record(json.loads(record_json(
        RosoutRecord.from_message(log(5, level=Log.WARN)))))
    assert record == LogRecord(ts='2027-01-15T08:00:00.000000005Z', level='warn',
                               logger='talker', msg='record 5', file='t.py', function='f',
                               line=7)
    huge = json.loads(record_json(RosoutRecord.from_message(log(1, msg='x' * 100_000))))
    assert len(huge['msg']) < 70_000 and huge['msg'].endswith('[truncated]')


def test_remote_record_becomes_a_log_message():
    message = log_message(parse_log_record({
        'ts': '2026-11-29T10:00:01.250Z', 'level': 'error', 'logger': 'robot-2.nav',
        'msg': 'clearing costmap', 'file': 'nav.py', 'function': 'step', 'line': 42}))
    assert (message.level, message.name, message.msg, message.file, message.function,
            message.line) == (Log.ERROR, 'robot-2.nav', 'clearing costmap', 'nav.py', 'step', 42)
    assert (message.stamp.sec % 60, message.stamp.nanosec) == (1, 250_000_000)


@pytest.mark.parametrize('given,expected', [('/ns/node', 'ns.node'), ('node', 'node'),
                                            (' /node ', 'node')])
def test_node_names_match_with_or_without_a_slash(given, expected):
    assert normalise_logger(given) == expected


def test_spool_keeps_order_survives_reopening_and_bounds_its_size(tmp_path):
    spool = Spool(tmp_path, max_bytes=64 << 10)
    for i in range(3):
        spool.add(f'b{i}', json.dumps({'n': i}), records=10, high_water={'talker': i})
    spool.remove(spool.entries[0])
    again = Spool(tmp_path, max_bytes=64 << 10)  # a restart
    assert [e.batch_id for e in again.entries] == ['b1', 'b2']
    assert json.loads(again.entries[0].frame()) == {'n': 1}
    assert again.high_water == {'talker': 2} and again.records == 20
    dropped = []
    for i in range(3, 40):
        dropped += again.add(f'b{i}', 'x' * 4000, records=100, high_water={})
    assert again.size <= 64 << 10 and again.dropped_records == sum(e.records for e in dropped)
    assert [e.batch_id for e in dropped][:2] == ['b1', 'b2']  # the oldest go first
    ids = [e.batch_id for e in again.entries]
    assert ids == sorted(ids, key=lambda b: int(b[1:]))


def test_spool_sequence_never_goes_back_and_junk_is_cleaned(tmp_path):
    spool = Spool(tmp_path, 1 << 20)
    spool.add('a', '{}', 1, {})
    spool.remove(spool.entries[-1])  # empty again
    spool.add('b', '{}', 1, {})
    assert spool.entries[-1].seq == 2
    (tmp_path / '000000000009.batch').write_text('not json')
    (tmp_path / '000000000010.tmp').write_text('half written')
    (tmp_path / 'state.json').write_text('{broken')
    reopened = Spool(tmp_path, 1 << 20)
    assert [e.batch_id for e in reopened.entries] == ['b']
    assert not list(tmp_path.glob('*.tmp')) and reopened.high_water == {}
    reopened.sync()


def make_forwarder(tmp_path, loop, min_level='info', ignore=('/roboflare_bridge', 'noisy')):
    return LogForwarder(loop, Spool(tmp_path, 1 << 30), min_level, list(ignore))


def run(coro):
    return asyncio.run(coro)


def test_filters_levels_and_ignored_nodes(tmp_path):
    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        for message in (log(1, level=Log.DEBUG), log(2, name='roboflare_bridge'),
                        log(3, name='roboflare_bridge.streams'), log(4, name='noisy'),
                        log(5, name='noisier'), log(6)):
            forwarder.on_rosout_raw(serialize_message(message))  # the bridge's fast path
        forwarder.on_rosout_raw(b'junk')
        await asyncio.sleep(0)
        forwarder.close_batch()
        return forwarder
    forwarder = run(scenario())
    frame = json.loads(forwarder.spool.entries[0].frame())
    assert [r['msg'] for r in frame['records']] == ['record 5', 'record 6']
    assert forwarder.stats.filtered == 4
    assert forwarder.drops.by_reason == {'unreadable /rosout message': 1}


def test_batches_close_by_count_bytes_and_time(tmp_path):
    async def scenario():
        loop = asyncio.get_running_loop()
        forwarder = make_forwarder(tmp_path, loop)
        for i in range(1200):
            forwarder.on_rosout(log(i))
        await asyncio.sleep(0)
        by_count = [e.records for e in forwarder.spool.entries]
        for i in range(1200, 1203):
            forwarder.on_rosout(log(i, msg='y' * 400_000))
        await asyncio.sleep(0)
        started = loop.time()
        while forwarder.spool.records < 1203:
            await asyncio.sleep(0.05)
        return forwarder, by_count, loop.time() - started
    forwarder, by_count, waited = run(scenario())
    assert by_count == [500, 500]
    sizes = [e.records for e in forwarder.spool.entries]
    assert sizes[:2] == [500, 500] and sum(sizes) == 1203
    assert all(e.size < MAX_BATCH_BYTES + 200 for e in forwarder.spool.entries)
    assert waited <= 1.0  # the last partial batch waited at most BATCH_MAX_WAIT_S


def test_sends_in_order_resends_after_reconnect_and_removes_on_ack(tmp_path):
    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        for batch in range(12):
            for i in range(3):
                forwarder.on_rosout(log(batch * 3 + i))
            await asyncio.sleep(0)
            forwarder.close_batch()
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
    assert len(first.sent) >= 8
    resent = [f['id'] for f in second.sent]
    assert resent[:5] == [f['id'] for f in first.sent[3:8]]  # unacked ones first, in order
    records = [r['msg'] for f in first.sent[:3] + second.sent for r in f['records']]
    assert records == [f'record {i}' for i in range(36)]
    assert forwarder.spool.records == 0 and forwarder.stats.acked_records == 36


def test_rejected_batch_is_dropped_other_errors_are_retried(tmp_path):
    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        for i in range(2):
            forwarder.on_rosout(log(i))
            await asyncio.sleep(0)
            forwarder.close_batch()
        stream = FakeStream()
        await forwarder.on_connect(stream)
        await asyncio.sleep(0)
        bad, busy = stream.sent
        forwarder.on_frame(json.dumps({'type': 'error', 'id': bad['id'],
                                       'error': {'code': 'bad_request', 'message': 'no'}}))
        forwarder.on_frame(json.dumps({'type': 'error', 'id': busy['id'],
                                       'error': {'code': 'internal_server_error',
                                                 'message': 'later'}}))
        forwarder.on_frame('{"type": "ack"}')  # malformed: counted, ignored
        return forwarder
    forwarder = run(scenario())
    assert [e.records for e in forwarder.spool.entries] == [1]
    assert forwarder.stats.rejected_records == 1
    assert set(forwarder.drops.by_reason) == {'rejected batch', 'batch error',
                                              'malformed reply'}


def test_replayed_history_is_not_sent_twice_across_a_restart(tmp_path):
    async def first_life():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        for i in range(10):
            forwarder.on_rosout(log(i))
        await asyncio.sleep(0)
        forwarder.close_batch()

    async def second_life():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        for i in range(15):  # transient-local history replays 0..9, then new records
            forwarder.on_rosout(log(i))
        await asyncio.sleep(0)
        forwarder.close_batch()
        return forwarder
    run(first_life())
    forwarder = run(second_life())
    frames = [json.loads(e.frame()) for e in forwarder.spool.entries]
    assert [r['msg'] for f in frames for r in f['records']] == [f'record {i}'
                                                                for i in range(15)]
    assert forwarder.stats.replayed_skipped == 10


def test_flush_spools_what_is_in_memory(tmp_path):
    async def scenario():
        forwarder = make_forwarder(tmp_path, asyncio.get_running_loop())
        forwarder.on_rosout(log(1))
        await forwarder.flush()
        forwarder.close()
    run(scenario())
    assert Spool(tmp_path, 1 << 20).records == 1
    assert os.path.exists(tmp_path / 'state.json')
