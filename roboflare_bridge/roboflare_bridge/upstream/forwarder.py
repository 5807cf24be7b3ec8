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
Upstream log forwarding: ``/rosout`` -> spool -> the robot's ``logs/ws``, acknowledged.

Records at or above ``log_min_level`` from nodes not ignored are gathered into batches
(500 records, 1 MiB or 0.25 s), each written to the spool before it is sent and removed
only when the server acknowledges it. Up to ``MAX_IN_FLIGHT`` batches await their acks;
one answered with an ``error`` is resent after a backoff, and everything unacknowledged is
resent after a reconnect or a restart. When an ack is overdue, nothing new is sent and only
the oldest batch in flight is resent, alone, until it is acknowledged (the timeout doubling
each time, up to 30 s); then every other batch in flight is resent in order (go-back-N)
before anything new. One probe at a time means a server that lost batches silently stores
them in each writer's order, however their timers had drifted apart. Batch ids make resends
harmless: at-least-once on the wire, exactly-once in the store.

More to send than room (pressure.py): a node's runs of identical records are collapsed and
its rate limited (FloodGuard), a full spool drops by level; every record not forwarded is
said upstream by a marker or a repeat summary in its place, and counted per node.

A sample seen before (see rosout.py) is skipped: the keys of everything spooled by the
previous run are checked for ``REPLAY_WINDOW_S`` after start, long past the 10 s that
/rosout publishers keep their history.

Threads: :meth:`LogForwarder.on_sample` runs in the rclpy executor's thread and only
appends to the inbox; everything else runs on the asyncio loop. Other threads read
:attr:`LogForwarder.stats` and the spool's integer counters, nothing else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
import logging
import struct
import time
from typing import Any, Deque, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple
import uuid

from .pressure import (
    BatchLayout, count_by, FloodGuard, FloodStats, level_char, Loss, MEMORY_FULL, Outgoing,
    SPOOL_FULL,
)
from .rosout import (
    KEY_BYTES, LEVEL_VALUES, normalise_logger, parse_log_cdr, record_json, RosoutRecord,
    sample_key, SeenSamples,
)
from .spool import Eviction, Spool, SpoolEntry
from ..common.drops import DropCounter
from ..control.resources import BAD_REQUEST
from ..transport.backoff import retry_backoff
from ..transport.streams import StreamSpec
from ..transport.wire import (
    encode_batch, FrameError, LOG_STREAM_LIMITS, LOGS_STREAM, MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS, parse_batch_reply,
)

_log = logging.getLogger(__name__)

# The contract allows 1 s; a shorter wait keeps fewer records in memory, which matters when
# the bridge is killed: /rosout's history (1000 records per node, 10 s) must cover them.
BATCH_MAX_WAIT_S = 0.25
SYNC_PERIOD_S = 0.2
MAX_IN_FLIGHT = 8
BATCH_OVERHEAD = 100  # bytes of the batch frame around its records
REPLAY_WINDOW_S = 60.0
VOLATILE_HOLD_S = 1.0
MAX_VOLATILE_HELD = 20_000
RESEND_CHECK_S = 0.1
MAX_ACK_TIMEOUT_S = 30.0
LOGGER_CACHE_SIZE = 4096  # verdicts of log_ignore_nodes per logger name
LOSS_REASONS = {SPOOL_FULL: 'spool full', MEMORY_FULL: 'memory full'}
LOSSES_SHOWN = 10  # loggers named in diagnostics, most records lost first
_LEVEL_CHARS = {level: level_char(level) for level in LEVEL_VALUES.values()}


@dataclass
class ForwarderStats:
    """Counters of the upstream forwarder (written on the loop, read by diagnostics)."""

    received: int = 0
    filtered: int = 0
    replayed_skipped: int = 0
    duplicates_skipped: int = 0
    forwarded: int = 0
    acked_batches: int = 0
    acked_records: int = 0
    rejected_records: int = 0
    resends: int = 0
    ack_timeouts: int = 0
    error_replies: int = 0
    in_flight: int = 0
    oldest_unacked_since: Optional[float] = None  # loop.time() of its first send
    # Records said by markers, by reason (LOSS_REASONS' values) and logger.
    lost: Dict[Tuple[str, str], int] = field(default_factory=dict)
    lost_unsaid: int = 0  # in batches dropped whole (an older bridge's, or markers only)

    def count_loss(self, reason: str, logger: str, count: int) -> None:
        count_by(self.lost, (reason, logger), count)


@dataclass
class _InFlight:
    entry: SpoolEntry
    first_sent: float
    due: float  # when it is resent if no ack (or, after an error reply, no resend) has come
    after_error: bool = False


class LogForwarder:
    """/rosout -> spool -> the robot's logs/ws, acknowledged, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spool: Spool, min_level: str,
                 ignore_loggers: Sequence[str], ack_timeout_s: float = 10.0,
                 collapse_window_s: float = 0.0, max_rate_per_node: float = 0.0) -> None:
        self.loop = loop
        self.spool = spool
        self.stats = ForwarderStats()
        self.drops = DropCounter(_log, 'log forwarding')
        self._min_level = LEVEL_VALUES[min_level]
        self._ignore = tuple(normalise_logger(n) for n in ignore_loggers if n.strip())
        self._ignored_cache: Dict[str, bool] = {}
        self._seen = SeenSamples()
        previous = spool.previous_keys
        self._previous_run: FrozenSet[bytes] = frozenset(
            previous[i:i + KEY_BYTES] for i in range(0, len(previous), KEY_BYTES))
        self._inbox: Deque[Tuple[bytes, RosoutRecord, str]] = deque()
        guard = FloodGuard(collapse_window_s, max_rate_per_node)
        self.guard: Optional[FloodGuard] = guard if guard.enabled else None
        self._said: List[Outgoing] = []  # summaries and markers the guard has to say
        self._volatile_held: Deque[Tuple[float, bytes, Mapping[str, Any]]] = deque()
        self._drain_scheduled = False
        self._batch: List[str] = []
        self._batch_levels: List[str] = []
        self._batch_weights: Dict[int, int] = {}
        self._batch_losses: Dict[int, Loss] = {}
        self._batch_keys = bytearray()
        self._batch_bytes = BATCH_OVERHEAD
        self._batch_timer: Optional[asyncio.TimerHandle] = None
        self._stream: Any = None
        self._in_flight: Dict[str, _InFlight] = {}  # in send order
        self._sent_seq = 0  # entries up to this seq were sent on the current connection
        self._ack_timeout = ack_timeout_s
        self._acks_missing = False  # only the oldest is resent, and logged once, until an ack
        self._ack_timeouts_in_row = 0  # the probe's timeout doubles with each
        self._error_backoff = retry_backoff()
        self._sends: Set[asyncio.Task] = set()
        self._io = ThreadPoolExecutor(1, thread_name_prefix='roboflare-spool')

    # -- executor thread: the /rosout subscriptions ---------------------------------------

    def on_sample(self, data: bytes, info: Mapping[str, Any]) -> None:
        """Take one serialised /rosout sample with its message info (executor thread)."""
        self.stats.received += 1
        try:
            record = parse_log_cdr(data)
        except (ValueError, struct.error) as exc:
            self.drops.drop('unreadable /rosout message', str(exc))
            return
        if record.level < self._min_level or self._ignored(record.name):
            self.stats.filtered += 1
            return
        key = sample_key(data, info)
        if key in self._previous_run:  # transient-local history the last run spooled
            self.stats.replayed_skipped += 1
            return
        if not self._seen.add(key):  # one sample reaching both subscriptions
            self.stats.duplicates_skipped += 1
            return
        self._inbox.append((key, record, record_json(record)))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def on_volatile_sample(self, data: bytes, info: Mapping[str, Any]) -> None:
        """
        Take a sample from the volatile reader (executor thread), to forward it later.

        That reader also gets transient-local writers' samples, and while such a writer is
        newly matched its history reaches the transient-local reader after live samples
        reach this one. Holding this copy for ``VOLATILE_HOLD_S`` lets the transient-local
        copy, in its writer's order, come first; this one is then a known repeat.
        """
        self._volatile_held.append((time.monotonic() + VOLATILE_HOLD_S, data, info))
        if len(self._volatile_held) > MAX_VOLATILE_HELD:
            self.release_volatile()

    def release_volatile(self) -> None:
        """Forward the held volatile samples that are due, oldest first (executor thread)."""
        held = self._volatile_held
        now = time.monotonic()
        while held and (held[0][0] <= now or len(held) > MAX_VOLATILE_HELD):
            _, data, info = held.popleft()
            self.on_sample(data, info)

    def _ignored(self, name: str) -> bool:
        verdict = self._ignored_cache.get(name)
        if verdict is None:
            if len(self._ignored_cache) > LOGGER_CACHE_SIZE:
                self._ignored_cache.clear()
            verdict = self._ignored_cache[name] = any(
                name == ignored or name.startswith(ignored + '.') for ignored in self._ignore)
        return verdict

    # -- event loop: batching -------------------------------------------------------------

    def _drain(self) -> None:
        self._drain_scheduled = False
        inbox, guard, said = self._inbox, self.guard, self._said
        now = self.loop.time()
        while inbox:
            key, record, text = inbox.popleft()
            forward = guard is None or guard.admit(key, record, now, said)
            if said:
                self._add_said()
            if forward:
                self._add(text, _LEVEL_CHARS.get(record.level) or level_char(record.level),
                          key)
        self._batch_filled()

    def _add(self, text: str, level: str, keys: bytes) -> None:
        if self._batch and (len(self._batch) >= MAX_BATCH_RECORDS
                            or self._batch_bytes + len(text) + 1 > MAX_BATCH_BYTES):
            self.close_batch()
        self._batch.append(text)
        self._batch_levels.append(level)
        self._batch_keys += keys
        self._batch_bytes += len(text) + 1

    def _add_said(self) -> None:
        """Batch the guard's summaries and markers, in the place they were said."""
        for item in self._said:
            self._add(item.text, item.level, item.keys)
            index = len(self._batch) - 1
            if item.loss is not None:
                self._batch_losses[index] = item.loss
            elif item.weight != 1:
                self._batch_weights[index] = item.weight
        self._said.clear()

    def _batch_filled(self) -> None:
        if self._batch and self._batch_timer is None:
            self._batch_timer = self.loop.call_later(BATCH_MAX_WAIT_S, self.close_batch)
        if len(self._batch) >= MAX_BATCH_RECORDS:
            self.close_batch()

    def expire_floods(self) -> None:
        """Say the repeats and rate-limit drops whose window has closed (event loop)."""
        if self.guard is not None:
            self.guard.expire(self.loop.time(), self._said)
            if self._said:
                self._add_said()
                self._batch_filled()

    def close_batch(self) -> None:
        """Spool the records gathered so far as one batch and send it if connected."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        if not self._batch:
            return
        batch_id = str(uuid.uuid4())
        layout = BatchLayout(''.join(self._batch_levels), self._batch_weights,
                             self._batch_losses)
        eviction = self.spool.add(batch_id, encode_batch(batch_id, self._batch),
                                  len(self._batch), bytes(self._batch_keys), layout)
        self.stats.forwarded += len(self._batch) - len(self._batch_losses)
        self._batch, self._batch_bytes = [], BATCH_OVERHEAD
        self._batch_levels, self._batch_weights, self._batch_losses = [], {}, {}
        self._batch_keys = bytearray()
        if eviction.losses or eviction.removed:
            self._evicted(eviction)
        self._pump()

    def _evicted(self, eviction: Eviction) -> None:
        for entry in eviction.removed:
            self._in_flight.pop(entry.batch_id, None)
        self._in_flight_changed()
        levels: Dict[str, int] = {}
        for loss in eviction.losses:
            self.stats.count_loss(LOSS_REASONS[loss.reason], loss.logger, loss.count)
            levels[loss.level] = levels.get(loss.level, 0) + loss.count
        where = 'memory (the disk refuses writes)' if self.spool.error else 'the spool'
        if levels:
            said = ', '.join(f'{count} {level}' for level, count in levels.items())
            self.drops.drop('spool full', f'{where} is full: {said} records dropped, lowest '
                            f'level first, markers forwarded in their place '
                            f'({self.spool.dropped_records} in all)', count=sum(levels.values()))
        if eviction.lost_records:
            self.stats.lost_unsaid += eviction.lost_records
            self.drops.drop('spool full, no marker', f'{where} is full of markers or of '
                            f'batches an older bridge wrote: dropped {eviction.lost_records} '
                            'records whole, with no marker upstream',
                            level=logging.ERROR, count=eviction.lost_records)

    async def run_sync(self) -> None:
        """Group-commit the spool to disk every SYNC_PERIOD_S (in the spool I/O thread)."""
        while True:
            await asyncio.sleep(SYNC_PERIOD_S)
            await self._sync()

    async def _sync(self) -> None:
        if self.spool.error:  # the disk may take writes again, even with no new batch
            self.spool.write_held()
        try:
            await self.loop.run_in_executor(self._io, self.spool.sync,
                                            self.spool.take_unsynced())
        except OSError as exc:
            self.spool.record_failure(exc)

    # -- event loop: the stream -----------------------------------------------------------

    async def on_connect(self, stream: Any) -> None:
        """(Re)send everything unacknowledged, oldest first."""
        self._stream = stream
        self._in_flight.clear()
        self._in_flight_changed()
        self._sent_seq = 0
        self._acks_missing = False  # everything unacknowledged goes again, in order
        self._ack_timeouts_in_row = 0
        self._pump()

    def on_disconnect(self, stream: Any) -> None:
        self._stream = None
        self._in_flight.clear()
        self._in_flight_changed()

    def _pump(self) -> None:
        stream = self._stream
        if self._acks_missing and not self._in_flight:
            self._acks_missing = False  # what was in flight was dropped: nothing to redo
        if stream is None or self._acks_missing:
            return  # nothing new while acks are missing: see _server_answers
        now = self.loop.time()
        for entry in list(self.spool.entries):
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                break
            if entry.seq <= self._sent_seq:
                continue
            self._in_flight[entry.batch_id] = _InFlight(entry, now, now + self._ack_timeout)
            entry.sent = True  # from now on it is rewritten under its id, never merged
            self._sent_seq = entry.seq
            self._send(stream, entry)
        self._in_flight_changed()

    def _send(self, stream: Any, entry: SpoolEntry) -> None:
        # The loop keeps only weak references to tasks: hold each send until it ends.
        task = asyncio.ensure_future(self._send_frame(stream, entry))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_frame(self, stream: Any, entry: SpoolEntry) -> None:
        try:
            frame = entry.frame()
        except OSError:
            self._in_flight.pop(entry.batch_id, None)
            self._in_flight_changed()
            return  # dropped to make room meanwhile
        if not await stream.send(frame):
            # Not sent: the connection is going away; resent on the next one.
            self._in_flight.pop(entry.batch_id, None)
            self._in_flight_changed()

    def on_frame(self, frame: Any) -> None:
        try:
            reply = parse_batch_reply(frame)
        except FrameError as exc:
            self.drops.drop('malformed reply', str(exc))
            return
        if reply is None:
            return  # a log record of this robot: the downstream mirror's business
        flight = self._in_flight.get(reply.batch_id)
        entry = flight.entry if flight is not None else next(
            (e for e in self.spool.entries if e.batch_id == reply.batch_id), None)
        if entry is None:
            return  # a late duplicate ack, after a resend
        if reply.ok:
            self.stats.acked_batches += 1
            self.stats.acked_records += entry.records
            self._forget(entry)
            self._error_backoff.reset()
            self._server_answers()
        elif reply.code == BAD_REQUEST:
            # The server says it will never take this batch: keep it from blocking the rest.
            self.stats.rejected_records += entry.records
            self.drops.drop('rejected batch', f'{reply.code}: {reply.message}',
                            level=logging.ERROR)
            self._forget(entry)
        else:
            self.stats.error_replies += 1
            if flight is not None:  # resent by _resend_due after a backoff, in its place
                flight.due = self.loop.time() + self._error_backoff.next_delay()
                flight.after_error = True
            _log.warning('log batch %s refused (%s: %s); resending it', reply.batch_id,
                         reply.code, reply.message[:200])
        self._pump()

    def _server_answers(self) -> None:
        """
        Resend all in flight at once, in order, if acks had gone missing (an ack came).

        Go-back-N: whatever was sent while the server answered nothing may be lost, and it
        must reach the store ahead of the batches logged after it, which wait until now.
        """
        self._ack_timeouts_in_row = 0
        if not self._acks_missing:
            return
        self._acks_missing = False
        stream, now = self._stream, self.loop.time()
        if stream is None:
            return
        for flight in self._in_flight.values():
            self._resend(stream, flight, now + self._ack_timeout)

    def _forget(self, entry: SpoolEntry) -> None:
        self._in_flight.pop(entry.batch_id, None)
        self.spool.remove(entry)
        self._in_flight_changed()

    def _in_flight_changed(self) -> None:
        self.stats.in_flight = len(self._in_flight)
        oldest = next(iter(self._in_flight.values()), None)
        self.stats.oldest_unacked_since = oldest.first_sent if oldest is not None else None

    async def run_resends(self) -> None:
        """Resend batches whose ack is overdue or that the server refused (every 0.1 s)."""
        self.loop.call_later(REPLAY_WINDOW_S, self._forget_previous_run)
        while True:
            await asyncio.sleep(RESEND_CHECK_S)
            self._resend_due()
            self.expire_floods()

    def _forget_previous_run(self) -> None:
        # The previous run's samples are out of every /rosout history by now.
        self._previous_run = frozenset()

    def _resend_due(self) -> None:
        stream = self._stream
        if stream is None or not self._in_flight:
            return
        now = self.loop.time()
        # The probe: the oldest alone, so nothing overtakes it on the way to the store.
        oldest = next(iter(self._in_flight.values()))
        if not self._acks_missing:
            overdue = next((f for f in self._in_flight.values()
                            if not f.after_error and f.due <= now), None)
            if overdue is None:
                self._resend_refused(stream, now)
                return
            self._acks_missing = True
            _log.warning('no acknowledgement of log batch %s within %.1f s; resending the '
                         'oldest unacknowledged batch until acks come, then the rest in order',
                         overdue.entry.batch_id, self._ack_timeout)
            if overdue is not oldest:
                self._ack_timeout_missed()  # the oldest was refused, or resent lately
        if oldest.due > now:
            return
        if not oldest.after_error:
            self._ack_timeout_missed()
        self._resend(stream, oldest, now + self._ack_timeout_after(self._ack_timeouts_in_row))

    def _resend_refused(self, stream: Any, now: float) -> None:
        # Alone and in their place: a refused batch lands after those in flight behind it.
        for flight in [f for f in self._in_flight.values() if f.after_error and f.due <= now]:
            self._resend(stream, flight, now + self._ack_timeout)

    def _resend(self, stream: Any, flight: _InFlight, due: float) -> None:
        flight.after_error = False
        flight.due = due
        self.stats.resends += 1
        self._send(stream, flight.entry)

    def _ack_timeout_missed(self) -> None:
        self._ack_timeouts_in_row += 1
        self.stats.ack_timeouts += 1

    def _ack_timeout_after(self, timeouts: int) -> float:
        return min(self._ack_timeout * 2 ** timeouts, max(MAX_ACK_TIMEOUT_S, self._ack_timeout))

    async def flush(self) -> None:
        """Spool what is in memory, with every summary and marker due, and sync it."""
        self._drain()
        if self.guard is not None:
            self.guard.flush(self._said)
            self._add_said()
        self.close_batch()
        await self._sync()

    # -- the capability -------------------------------------------------------------------

    def stream_spec(self) -> StreamSpec:
        return StreamSpec(LOGS_STREAM, self.on_frame, on_connect=self.on_connect,
                          on_disconnect=self.on_disconnect, options=dict(LOG_STREAM_LIMITS))

    def diagnostic_values(self) -> Dict[str, Any]:
        """Return the counters (executor thread: integers and strings only)."""
        stats, spool = self.stats, self.spool
        oldest = stats.oldest_unacked_since
        return {
            'received': stats.received, 'filtered': stats.filtered,
            'replayed_skipped': stats.replayed_skipped,
            'duplicates_skipped': stats.duplicates_skipped, 'forwarded': stats.forwarded,
            'acked_batches': stats.acked_batches, 'acked_records': stats.acked_records,
            'rejected_records': stats.rejected_records, 'in_flight': stats.in_flight,
            'oldest_unacked_s': 0.0 if oldest is None else max(0.0, time.monotonic() - oldest),
            'resends': stats.resends, 'ack_timeouts': stats.ack_timeouts,
            'error_replies': stats.error_replies, 'spool_records': spool.records,
            'spool_bytes': spool.size, 'spool_held_bytes': spool.held_bytes,
            'spool_dropped_records': spool.dropped_records,
            'spool_write_failures': spool.write_failures, 'spool_error': spool.error,
            'drops': self.drops.total, **self._loss_values()}

    def _loss_values(self) -> Dict[str, Any]:
        """Return what was not forwarded one by one, per reason and logger (executor thread)."""
        flood = self.guard.stats if self.guard is not None else FloodStats()
        by_logger: Dict[str, Dict[str, int]] = {}
        totals = {'spool full': 0, 'memory full': 0, 'collapsed': 0, 'rate limit': 0}
        counted = [*dict(self.stats.lost).items(),
                   *((('collapsed', logger), n) for logger, n in dict(flood.collapsed).items()),
                   *((('rate limit', logger), n)
                     for logger, n in dict(flood.rate_limited).items())]
        for (reason, logger), count in counted:
            totals[reason] += count
            per = by_logger.setdefault(logger, {})
            per[reason] = per.get(reason, 0) + count
        ranked = sorted(by_logger.items(), key=lambda item: -sum(item[1].values()))
        shown = '; '.join(
            f'{logger}: ' + ', '.join(f'{reason} {n}' for reason, n in sorted(per.items()))
            for logger, per in ranked[:LOSSES_SHOWN])
        if len(ranked) > LOSSES_SHOWN:
            shown += f'; {len(ranked) - LOSSES_SHOWN} more loggers'
        return {'dropped_spool_full': totals['spool full'],
                'dropped_memory_full': totals['memory full'],
                'dropped_rate_limit': totals['rate limit'], 'collapsed': totals['collapsed'],
                'dropped_without_marker': self.stats.lost_unsaid,
                'pending_summaries': self.guard.pending if self.guard is not None else 0,
                'losses_by_logger': shown or 'none'}

    def stop(self) -> None:
        self._io.shutdown(wait=True)


__all__ = ['ForwarderStats', 'LogForwarder']
