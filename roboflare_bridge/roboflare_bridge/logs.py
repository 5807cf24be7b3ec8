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
Logs in both directions.

Upstream (a bridge running on a robot): ``/rosout`` records at or above ``log_min_level``
become acknowledged batches on the robot's ``logs/ws``. Every batch is written to the
on-disk spool before it is sent and deleted only when the server acknowledges it; after a
reconnect or a restart the spool is resent in order, and batch ids make resends harmless.
So delivery is at-least-once on the wire and exactly-once in the store.

Durability: a batch file and the high-water state are written (write + rename) before the
batch is sent, so a crash or SIGKILL of the bridge loses nothing that was batched. They
are fsynced in groups every ``SYNC_PERIOD_S``: a power cut can lose the batches of that
last fraction of a second. Records not yet batched (at most ``BATCH_MAX_WAIT_S``) live in
memory; after a restart ``/rosout``'s transient-local history (1000 records per node,
10 s lifespan) replays them, and the persisted high-water stamp per logger skips those
already spooled.

Downstream: each mirrored robot's ``logs/ws`` records become ``rcl_interfaces/msg/Log`` on
``<namespace>/rosout``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
import json
import logging
import os
from pathlib import Path
import struct
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Tuple
import uuid

from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from . import jsonutil
from .counters import DropCounter, publish_or_drop
from .frames import (
    encode_batch, FrameError, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, parse_batch_reply,
    parse_json_object, parse_log_record,
)
from .resources import parse_time

_log = logging.getLogger(__name__)

LEVEL_NAMES = {Log.DEBUG: 'debug', Log.INFO: 'info', Log.WARN: 'warn', Log.ERROR: 'error',
               Log.FATAL: 'fatal'}
LEVEL_VALUES = {name: value for value, name in LEVEL_NAMES.items()}
# The issue allows 1 s; a shorter wait keeps fewer records in memory, which matters when
# the bridge is killed: /rosout's history (1000 records per node) must cover them.
BATCH_MAX_WAIT_S = 0.25
SYNC_PERIOD_S = 0.2
MAX_IN_FLIGHT = 8
MAX_MSG_CHARS = 64 << 10
BATCH_OVERHEAD = 100  # bytes of the batch frame around its records


def rosout_qos(depth: int = 1000) -> QoSProfile:
    """Return /rosout's QoS: reliable, transient local (rclpy on Jazzy has no preset)."""
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      lifespan=Duration(seconds=10))


def level_name(level: int) -> str:
    """Return the contract's level for a Log level (rounding down between constants)."""
    for value in sorted(LEVEL_NAMES, reverse=True):
        if level >= value:
            return LEVEL_NAMES[value]
    return 'debug'


@dataclass(frozen=True)
class RosoutRecord:
    """The fields of one rcl_interfaces/msg/Log."""

    sec: int
    nanosec: int
    level: int
    name: str
    msg: str
    file: str
    function: str
    line: int

    @classmethod
    def from_message(cls, message: Log) -> 'RosoutRecord':
        return cls(message.stamp.sec, message.stamp.nanosec, message.level, message.name,
                   message.msg, message.file, message.function, message.line)


def parse_log_cdr(data: bytes) -> RosoutRecord:
    """
    Read a serialised rcl_interfaces/msg/Log (CDR, as rclpy's raw subscriptions give it).

    Taking /rosout raw and reading these few fields here costs a fraction of building the
    Python message through its generated constructor; the test checks it against rclpy's
    own serialisation.
    """
    if len(data) < 4 + 12 or data[1] not in (0, 1):
        raise ValueError('not a CDR-encapsulated message')
    order = '<' if data[1] == 1 else '>'
    body = memoryview(data)[4:]
    sec, nanosec = struct.unpack_from(order + 'iI', body, 0)
    level = body[8]
    offset = 12
    strings = []
    for _ in range(4):
        offset = (offset + 3) & ~3
        (length,) = struct.unpack_from(order + 'I', body, offset)
        start = offset + 4
        if length == 0 or start + length > len(body):
            raise ValueError('string runs past the end of the message')
        strings.append(str(body[start:start + length - 1], 'utf-8', 'replace'))
        offset = start + length
    offset = (offset + 3) & ~3
    (line,) = struct.unpack_from(order + 'I', body, offset)
    return RosoutRecord(sec, nanosec, level, *strings, line)


_TS_CACHE: Dict[int, str] = {}


def rfc3339_ns(sec: int, nanosec: int) -> str:
    """Return a ROS time as an RFC 3339 UTC string with nanoseconds."""
    base = _TS_CACHE.get(sec)
    if base is None:  # many records share a second: format it once
        if len(_TS_CACHE) > 64:
            _TS_CACHE.clear()
        base = _TS_CACHE[sec] = datetime.fromtimestamp(sec, tz=timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%S')
    return f'{base}.{nanosec:09d}Z'


def record_json(record: RosoutRecord) -> str:
    """Return a /rosout record as the contract's JSON log record."""
    text = record.msg
    if len(text) > MAX_MSG_CHARS:
        text = text[:MAX_MSG_CHARS] + ' [truncated]'
    return jsonutil.dumps({'ts': rfc3339_ns(record.sec, record.nanosec),
                           'level': level_name(record.level), 'logger': record.name,
                           'msg': text, 'file': record.file, 'function': record.function,
                           'line': record.line})


def normalise_logger(name: str) -> str:
    """Return a node or logger name as /rosout writes it (/ns/node -> ns.node)."""
    return name.strip().lstrip('/').replace('/', '.')


def drain_subscription(subscription: Any, callback: Any, limit: int = 2000) -> int:
    """
    Take and handle what else is queued on ``subscription``; return how many.

    The executor hands over one message per wake-up and rebuilds its wait set each time,
    which caps a node with many services near 2,000 messages/s; /rosout's writer then
    overwrites what the reader has not taken. Draining the queue from the callback uses
    the executor's own take (``handle.take_message``, the same call on Jazzy and Kilted).
    """
    handle = subscription.handle
    for count in range(limit):
        with handle:
            taken = handle.take_message(subscription.msg_type, subscription.raw)
        if taken is None:
            return count
        callback(taken[0])
    return limit


# -- the spool -----------------------------------------------------------------------------

@dataclass
class SpoolEntry:
    """One unacknowledged batch on disk."""

    seq: int
    batch_id: str
    records: int
    path: Path
    size: int

    def frame(self) -> str:
        return self.path.read_text(encoding='utf-8').split('\n', 1)[1]


class Spool:
    """
    Unacknowledged batches, one file each, oldest first, bounded in bytes.

    A file is a JSON header line (``id``, ``records``) then the batch frame. ``state.json``
    holds the high-water stamp per logger of everything ever spooled. Not thread-safe:
    one owner (the forwarder's event loop); only :meth:`sync` may run in another thread.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self.entries: Deque[SpoolEntry] = deque()
        self.size = 0
        self.dropped_records = 0
        self.high_water: Dict[str, int] = {}
        self._unsynced: List[Path] = []
        self._load()
        # Monotonic for the spool's life: the sender tells new batches by their seq.
        self._next_seq = self.entries[-1].seq + 1 if self.entries else 1

    def _load(self) -> None:
        state = self.directory / 'state.json'
        try:
            self.high_water = {str(k): int(v) for k, v in
                               json.loads(state.read_text(encoding='utf-8'))['high_water']
                               .items()}
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError, AttributeError):
            _log.warning('spool state %s is unreadable; starting without it', state)
        for stale in self.directory.glob('*.tmp'):
            stale.unlink()  # a write that a crash interrupted: never renamed, never sent
        for path in sorted(self.directory.glob('*.batch')):
            try:
                header = json.loads(path.read_text(encoding='utf-8').split('\n', 1)[0])
                entry = SpoolEntry(int(path.stem), str(header['id']), int(header['records']),
                                   path, path.stat().st_size)
            except (ValueError, KeyError, OSError, IndexError):
                _log.warning('spool file %s is unreadable; removed', path.name)
                path.unlink(missing_ok=True)
                continue
            self.entries.append(entry)
            self.size += entry.size

    @property
    def records(self) -> int:
        return sum(entry.records for entry in self.entries)

    def add(self, batch_id: str, frame: str, records: int,
            high_water: Dict[str, int]) -> List[SpoolEntry]:
        """Store a batch; return the entries dropped (oldest first) to stay under the limit."""
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        path = self.directory / f'{seq:012d}.batch'
        text = json.dumps({'id': batch_id, 'records': records}) + '\n' + frame
        _write_atomically(path, text)
        entry = SpoolEntry(seq, batch_id, records, path, len(text.encode('utf-8')))
        self.entries.append(entry)
        self.size += entry.size
        for name, stamp in high_water.items():
            if stamp > self.high_water.get(name, -1):
                self.high_water[name] = stamp
        _write_atomically(self.directory / 'state.json',
                          json.dumps({'high_water': self.high_water}))
        self._unsynced.append(path)
        dropped = []
        while self.size > self.max_bytes and len(self.entries) > 1:
            oldest = self.entries.popleft()
            self._delete(oldest)
            self.dropped_records += oldest.records
            dropped.append(oldest)
        return dropped

    def remove(self, entry: SpoolEntry) -> None:
        try:
            self.entries.remove(entry)
        except ValueError:
            return  # already dropped to make room
        self._delete(entry)

    def _delete(self, entry: SpoolEntry) -> None:
        self.size -= entry.size
        entry.path.unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush to disk (fsync) the batches written since the last call, state and directory."""
        paths, self._unsynced = self._unsynced, []
        for path in paths + [self.directory / 'state.json']:
            try:
                with open(path, 'rb') as handle:
                    os.fsync(handle.fileno())
            except FileNotFoundError:
                pass  # acknowledged and deleted meanwhile
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix('.tmp')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)


# -- upstream ------------------------------------------------------------------------------

@dataclass
class ForwarderStats:
    """Counters of the upstream forwarder, for diagnostics."""

    received: int = 0
    filtered: int = 0
    replayed_skipped: int = 0
    forwarded: int = 0
    acked_batches: int = 0
    acked_records: int = 0
    rejected_records: int = 0


class LogForwarder:
    """/rosout -> spool -> the robot's logs/ws, acknowledged, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spool: Spool, min_level: str,
                 ignore_loggers: Sequence[str]) -> None:
        self.loop = loop
        self.spool = spool
        self.stats = ForwarderStats()
        self.drops = DropCounter(_log, 'log forwarding')
        self._min_level = LEVEL_VALUES[min_level]
        self._ignore = tuple(normalise_logger(n) for n in ignore_loggers if n.strip())
        self._ignored_cache: Dict[str, bool] = {}
        self._inbox: Deque[Tuple[str, int, str]] = deque()
        self._drain_scheduled = False
        self._batch: List[str] = []
        self._batch_bytes = BATCH_OVERHEAD
        self._batch_high_water: Dict[str, int] = {}
        self._batch_timer: Optional[asyncio.TimerHandle] = None
        self._stream: Any = None
        self._in_flight: Dict[str, SpoolEntry] = {}
        self._sent_seq = 0  # entries up to this seq were sent on the current connection
        self._sends: Set[asyncio.Task] = set()
        self._io = ThreadPoolExecutor(1, thread_name_prefix='roboflare-spool')
        self._sync_task: Optional[asyncio.Task] = None
        self.synced = asyncio.Event()

    # -- executor thread: the /rosout subscription ----------------------------------------

    def on_rosout(self, message: Log) -> None:
        """Take one /rosout message (called in the rclpy executor's thread)."""
        self.on_record(RosoutRecord.from_message(message))

    def on_rosout_raw(self, data: bytes) -> None:
        """Take one serialised /rosout message (a raw subscription: the fast path)."""
        try:
            record = parse_log_cdr(data)
        except (ValueError, struct.error) as exc:
            self.drops.drop('unreadable /rosout message', str(exc))
            return
        self.on_record(record)

    def on_record(self, record: RosoutRecord) -> None:
        self.stats.received += 1
        name = record.name
        if record.level < self._min_level or self._ignored(name):
            self.stats.filtered += 1
            return
        stamp = record.sec * 1_000_000_000 + record.nanosec
        if stamp <= self.spool.high_water.get(name, -1):
            # Transient-local history replayed to this subscription, already spooled.
            self.stats.replayed_skipped += 1
            return
        self._inbox.append((name, stamp, record_json(record)))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _ignored(self, name: str) -> bool:
        verdict = self._ignored_cache.get(name)
        if verdict is None:
            if len(self._ignored_cache) > 4096:
                self._ignored_cache.clear()
            verdict = self._ignored_cache[name] = any(
                name == ignored or name.startswith(ignored + '.') for ignored in self._ignore)
        return verdict

    # -- event loop: batching -------------------------------------------------------------

    def _drain(self) -> None:
        self._drain_scheduled = False
        while self._inbox:
            name, stamp, text = self._inbox.popleft()
            if self._batch and (len(self._batch) >= MAX_BATCH_RECORDS
                                or self._batch_bytes + len(text) + 1 > MAX_BATCH_BYTES):
                self.close_batch()
            self._batch.append(text)
            self._batch_bytes += len(text) + 1
            if stamp > self._batch_high_water.get(name, -1):
                self._batch_high_water[name] = stamp
        if self._batch and self._batch_timer is None:
            self._batch_timer = self.loop.call_later(BATCH_MAX_WAIT_S, self.close_batch)
        if len(self._batch) >= MAX_BATCH_RECORDS:
            self.close_batch()

    def close_batch(self) -> None:
        """Spool the records gathered so far as one batch and send it if connected."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        if not self._batch:
            return
        batch_id = str(uuid.uuid4())
        dropped = self.spool.add(batch_id, encode_batch(batch_id, self._batch),
                                 len(self._batch), self._batch_high_water)
        self.stats.forwarded += len(self._batch)
        self._batch, self._batch_bytes, self._batch_high_water = [], BATCH_OVERHEAD, {}
        if dropped:
            records = sum(entry.records for entry in dropped)
            for entry in dropped:
                self._in_flight.pop(entry.batch_id, None)
            self.drops.drop('spool full', f'spool over {self.spool.max_bytes} bytes: dropped '
                            f'the {records} oldest records ({self.spool.dropped_records} '
                            'in all)', count=records)
        self._pump()

    async def run_sync(self) -> None:
        """Group-commit the spool to disk every SYNC_PERIOD_S (in the spool I/O thread)."""
        while True:
            await asyncio.sleep(SYNC_PERIOD_S)
            await self.loop.run_in_executor(self._io, self.spool.sync)
            self.synced.set()

    # -- event loop: the stream -----------------------------------------------------------

    async def on_connect(self, stream: Any) -> None:
        """(Re)send everything unacknowledged, oldest first."""
        self._stream = stream
        self._in_flight.clear()
        self._sent_seq = 0
        self._pump()

    def on_disconnect(self, stream: Any) -> None:
        self._stream = None
        self._in_flight.clear()

    def _pump(self) -> None:
        stream = self._stream
        if stream is None:
            return
        for entry in list(self.spool.entries):
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                return
            if entry.seq <= self._sent_seq:
                continue
            self._in_flight[entry.batch_id] = entry
            self._sent_seq = entry.seq
            # The loop keeps only weak references to tasks: hold each send until it ends.
            task = asyncio.ensure_future(self._send(stream, entry))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, stream: Any, entry: SpoolEntry) -> None:
        try:
            frame = entry.frame()
        except OSError:
            self._in_flight.pop(entry.batch_id, None)
            return  # dropped to make room meanwhile
        if not await stream.send(frame):
            self._in_flight.pop(entry.batch_id, None)  # resent on the next connection

    def on_frame(self, frame: Any) -> None:
        try:
            reply = parse_batch_reply(frame)
        except FrameError as exc:
            self.drops.drop('malformed reply', str(exc))
            return
        if reply is None:
            return  # a log record of this robot: the downstream mirror's business
        entry = self._in_flight.pop(reply.batch_id, None)
        if entry is None:
            entry = next((e for e in self.spool.entries if e.batch_id == reply.batch_id), None)
            if entry is None:
                return  # a late duplicate ack
        if reply.ok:
            self.stats.acked_batches += 1
            self.stats.acked_records += entry.records
            self.spool.remove(entry)
        elif reply.code == 'bad_request':
            # The server will never take it: keep it from blocking the rest.
            self.stats.rejected_records += entry.records
            self.drops.drop('rejected batch', f'{reply.code}: {reply.message}',
                            level=logging.ERROR)
            self.spool.remove(entry)
        else:
            self.drops.drop('batch error', f'{reply.code}: {reply.message}; will resend')
        self._pump()

    async def flush(self) -> None:
        """Spool what is in memory and sync it: for shutdown."""
        self._drain()
        self.close_batch()
        await self.loop.run_in_executor(self._io, self.spool.sync)

    def close(self) -> None:
        self._io.shutdown(wait=True)


# -- downstream ----------------------------------------------------------------------------

def log_message(record: Any) -> Log:
    """Return a contract log record (validated) as an rcl_interfaces/msg/Log."""
    try:
        sec, nanosec = parse_time(record.ts)
    except ValueError:
        sec, nanosec = 0, 0
    return Log(stamp=Time(sec=sec, nanosec=nanosec), level=LEVEL_VALUES[record.level],
               name=record.logger, msg=record.msg, file=record.file,
               function=record.function, line=record.line)


class LogMirror:
    """One robot's log records republished on <namespace>/rosout."""

    def __init__(self, robot_label: str, namespace: str, create_publisher: Any) -> None:
        self.topic = namespace.rstrip('/') + '/rosout'
        self.published = 0
        self.drops = DropCounter(_log, f'{robot_label} logs')
        self._publisher = create_publisher(Log, self.topic, rosout_qos(100))

    def on_frame(self, frame: Any) -> None:
        try:
            obj = parse_json_object(frame)
            if 'type' in obj:
                return  # an ack or error for an upstream batch
            message = log_message(parse_log_record(obj))
        except FrameError as exc:
            self.drops.drop('malformed record', str(exc))
            return
        if publish_or_drop(self._publisher, message, self.drops):
            self.published += 1

    def stats(self) -> Dict[str, Any]:
        return {'remote_logs_published': self.published, 'remote_logs_drops': self.drops.total}


__all__ = ['LogForwarder', 'LogMirror', 'RosoutRecord', 'Spool', 'drain_subscription',
           'log_message', 'parse_log_cdr', 'record_json', 'rosout_qos']
