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
What upstream forwarding does when there is more to send than room, with no silent loss.

Pure logic, no I/O: the spool (spool.py) and the forwarder (forwarder.py) apply it.

- **Markers.** Records not forwarded are said upstream by a marker record in their place:
  level warn, logger ``roboflare_bridge``, ``dropped 1523 info records from /lidar_driver
  between <t1> and <t2>: spool full (spool_max_bytes)``. A marker is a :class:`Loss`; the
  markers of one logger, level and reason merge (counts add, the time range widens) but are
  never dropped themselves.
- **Eviction by level** (:func:`evict_level`): a full spool rewrites its oldest batch that
  holds records of the lowest level spooled, those records replaced by markers.
- **Floods** (:class:`FloodGuard`): a node's consecutive identical records within the
  collapse window are forwarded once, then ``last message repeated N times``; records past
  a node's rate limit are dropped and said by markers.

A batch's :class:`BatchLayout` says what eviction needs without parsing: each record's
level (``m`` for a marker), the weight of a repeat summary (the records it stands for) and
each marker's :class:`Loss`. Counts add up exactly: records delivered, plus the weights of
repeat summaries, plus the counts of markers, equal the records admitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .rosout import level_name, rfc3339_ns, RosoutRecord
from ..common import jsonutil

LEVEL_ORDER = 'diwef'  # a full spool drops debug first, fatal last
LEVEL_NAME_OF = {name[0]: name for name in ('debug', 'info', 'warn', 'error', 'fatal')}
MARKER = 'm'
MARKER_LOGGER = 'roboflare_bridge'
SPOOL_FULL = 'spool full (spool_max_bytes)'
MEMORY_FULL = 'the disk refuses writes and the memory that holds batches is full'
RATE_LIMITED = 'rate limit (log_max_rate_per_node)'
MARKER_PERIOD_S = 1.0  # a node over its rate limit gets at most one marker a second
MAX_TRACKED_NODES = 4096  # loggers with flood state; beyond, everything pending is said
MAX_LOGGERS_COUNTED = 1024  # loggers with counters of their own; the rest share one
OTHER_LOGGERS = '(other loggers)'


def level_char(level: int) -> str:
    """Return the one-letter level of a Log level: d, i, w, e or f."""
    return level_name(level)[0]


def display_logger(logger: str) -> str:
    """Return a logger as the node it names (``ns.node`` -> ``/ns/node``)."""
    return '/' + logger.replace('.', '/')


@dataclass
class Loss:
    """Records of one logger and level not forwarded for one reason: one marker upstream."""

    logger: str
    level: str  # the dropped records' level name
    reason: str
    count: int
    first_ts: str  # RFC 3339, as the records carried them
    last_ts: str

    @property
    def key(self) -> Tuple[str, str, str]:
        return (self.logger, self.level, self.reason)

    def absorb(self, other: 'Loss') -> None:
        """Count ``other``'s records in this marker."""
        self.count += other.count
        self.first_ts = min(self.first_ts, other.first_ts)
        self.last_ts = max(self.last_ts, other.last_ts)

    def add(self, count: int, ts: str) -> None:
        self.count += count
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)

    def record(self) -> Dict[str, Any]:
        """Return the marker record, stamped as the first record it stands for."""
        return {'ts': self.first_ts, 'level': 'warn', 'logger': MARKER_LOGGER,
                'msg': f'dropped {self.count} {self.level} records from '
                       f'{display_logger(self.logger)} between {self.first_ts} and '
                       f'{self.last_ts}: {self.reason}',
                'file': '', 'function': '', 'line': 0}

    def to_list(self) -> List[Any]:
        return [self.logger, self.level, self.reason, self.count, self.first_ts, self.last_ts]

    @classmethod
    def from_list(cls, values: Sequence[Any]) -> 'Loss':
        logger, level, reason, count, first_ts, last_ts = values
        return cls(str(logger), str(level), str(reason), int(count), str(first_ts),
                   str(last_ts))


@dataclass
class BatchLayout:
    """Per record of a batch: its level, what it stands for; enough to evict by level."""

    levels: str  # one of LEVEL_ORDER per record, MARKER for a marker
    weights: Dict[int, int] = field(default_factory=dict)  # repeat summaries: index -> count
    losses: Dict[int, Loss] = field(default_factory=dict)  # markers: index -> what they say

    def to_header(self) -> Dict[str, Any]:
        return {'levels': self.levels,
                'weights': {str(i): n for i, n in self.weights.items()},
                'losses': {str(i): loss.to_list() for i, loss in self.losses.items()}}

    @classmethod
    def from_header(cls, header: Dict[str, Any]) -> Optional['BatchLayout']:
        """Return the layout a spool file's header holds; None for a file without one."""
        levels = header.get('levels')
        if not isinstance(levels, str):
            return None
        return cls(levels, {int(i): int(n) for i, n in header.get('weights', {}).items()},
                   {int(i): Loss.from_list(v) for i, v in header.get('losses', {}).items()})


@dataclass
class Batch:
    """A batch's records (parsed) with their layout: what eviction and merging rewrite."""

    records: List[Dict[str, Any]]
    layout: BatchLayout

    @classmethod
    def parse(cls, frame: str, layout: BatchLayout) -> 'Batch':
        records = jsonutil.loads(frame)['records']
        if len(records) != len(layout.levels):
            raise ValueError('batch records and layout disagree')
        return cls(records, layout)

    def record_texts(self) -> List[str]:
        return [jsonutil.dumps(record) for record in self.records]


def evict_level(batch: Batch, level: str, reason: str) -> Tuple[Batch, List[Loss]]:
    """
    Return ``batch`` with its records of ``level`` replaced by markers, and what was dropped.

    One marker per logger, in the place of that logger's first dropped record; a marker the
    batch already has for the same logger, level and reason counts the new ones too.
    """
    return _rebuild([batch], level, reason)


def merge_batches(older: Batch, newer: Batch) -> Batch:
    """Return one batch of both, in order; markers of the same kind merge into the first."""
    return _rebuild([older, newer])[0]


def _rebuild(batches: Sequence[Batch], drop_level: str = '',
             reason: str = '') -> Tuple[Batch, List[Loss]]:
    records: List[Dict[str, Any]] = []
    levels: List[str] = []
    weights: Dict[int, int] = {}
    markers: Dict[Tuple[str, str, str], int] = {}  # kind -> its position
    losses: Dict[int, Loss] = {}
    dropped: Dict[Tuple[str, str, str], Loss] = {}
    for batch in batches:
        layout = batch.layout
        for index, (record, char) in enumerate(zip(batch.records, layout.levels)):
            if char == MARKER:
                loss = Loss(**vars(layout.losses[index]))
            elif char == drop_level:
                ts = str(record.get('ts', ''))
                loss = Loss(str(record.get('logger', '')), LEVEL_NAME_OF[char], reason,
                            layout.weights.get(index, 1), ts, ts)
                if loss.key in dropped:
                    dropped[loss.key].absorb(loss)
                else:
                    dropped[loss.key] = Loss(**vars(loss))
            else:
                if index in layout.weights:
                    weights[len(records)] = layout.weights[index]
                records.append(record)
                levels.append(char)
                continue
            position = markers.get(loss.key)
            if position is not None:
                losses[position].absorb(loss)
                continue
            markers[loss.key] = len(records)
            losses[len(records)] = loss
            records.append({})  # the marker's record, once every count is in
            levels.append(MARKER)
    for position, loss in losses.items():
        records[position] = loss.record()
    return Batch(records, BatchLayout(''.join(levels), weights, losses)), list(dropped.values())


# -- floods --------------------------------------------------------------------------------

@dataclass
class Outgoing:
    """A record to batch: its JSON, level letter, the sample keys it accounts for, weight."""

    text: str
    level: str
    keys: bytes
    weight: int = 1
    loss: Optional[Loss] = None


@dataclass
class _Run:
    """A node's last forwarded record and the identical ones suppressed since."""

    identity: Tuple[Any, ...]
    record: RosoutRecord
    window_start: float
    repeats: int = 0
    keys: bytearray = field(default_factory=bytearray)
    last_sec: int = 0
    last_nanosec: int = 0


@dataclass
class _Limit:
    """A node's token bucket and the records it dropped that no marker said yet."""

    tokens: float
    updated: float
    pending: Dict[str, Loss] = field(default_factory=dict)  # by level name
    keys: bytearray = field(default_factory=bytearray)
    since: float = 0.0  # when the first pending drop happened


@dataclass
class FloodStats:
    """Records collapsed into repeat summaries and dropped by rate limits, per logger."""

    collapsed: Dict[str, int] = field(default_factory=dict)
    rate_limited: Dict[str, int] = field(default_factory=dict)


class FloodGuard:
    """
    Collapses runs of identical records and enforces a per-node rate limit.

    A run: records of one node equal in level, message and source location. Its first
    record is forwarded; the next within ``collapse_window_s`` are counted; when a different
    record of that node comes, or the window closes (:meth:`expire`), one ``last message
    repeated N times`` (that node's logger and level, stamped as the last repeat) says them;
    a run still going starts a new window. The sample keys of what a summary or a marker
    stands for travel with it into the spool, so a restarted bridge that is replayed those
    records by /rosout's history (what no summary said yet) counts them once.

    Owned by the forwarder's event loop; ``now`` is monotonic seconds.
    """

    def __init__(self, collapse_window_s: float, max_rate: float) -> None:
        self.window = collapse_window_s
        self.max_rate = max_rate
        self.stats = FloodStats()
        self._runs: Dict[str, _Run] = {}
        self._limits: Dict[str, _Limit] = {}

    @property
    def enabled(self) -> bool:
        return self.window > 0 or self.max_rate > 0

    def admit(self, key: bytes, record: RosoutRecord, now: float,
              said: List[Outgoing]) -> bool:
        """
        Return whether to forward this record; append to ``said`` what must come before it.

        That is a summary of the node's run it ends, or a marker of rate-limit drops.
        """
        name = record.name
        run = None
        if self.window > 0:
            identity = (record.level, record.msg, record.file, record.function, record.line)
            run = self._runs.get(name)
            if run is not None:
                if run.identity == identity:
                    if now - run.window_start >= self.window:  # expire() has not run yet
                        run.window_start = now
                        if not run.repeats:  # the run had ended: this one starts anew
                            return self.max_rate <= 0 or self._take_token(key, record, now,
                                                                          said)
                        self._summarise(run, said)
                    run.repeats += 1
                    run.keys += key
                    run.last_sec, run.last_nanosec = record.sec, record.nanosec
                    count_by(self.stats.collapsed, name, 1)
                    return False
                self._summarise(run, said)
                del self._runs[name]
        if self.max_rate > 0 and not self._take_token(key, record, now, said):
            return False
        if self.window > 0:
            if len(self._runs) >= MAX_TRACKED_NODES:
                self.flush(said)
            self._runs[name] = _Run(identity, record, now)
        return True

    def _take_token(self, key: bytes, record: RosoutRecord, now: float,
                    out: List[Outgoing]) -> bool:
        name = record.name
        limit = self._limits.get(name)
        if limit is None:
            if len(self._limits) >= MAX_TRACKED_NODES:
                self.flush(out)
            limit = self._limits[name] = _Limit(self.max_rate, now)
        else:
            limit.tokens = min(self.max_rate,
                               limit.tokens + (now - limit.updated) * self.max_rate)
            limit.updated = now
        if limit.tokens >= 1.0:
            limit.tokens -= 1.0
            if limit.pending and now - limit.since >= MARKER_PERIOD_S:
                self._say_limited(name, limit, out)  # the drops before this record
            return True
        level = level_name(record.level)
        ts = rfc3339_ns(record.sec, record.nanosec)
        loss = limit.pending.get(level)
        if loss is None:
            limit.pending[level] = Loss(name, level, RATE_LIMITED, 1, ts, ts)
        else:
            loss.add(1, ts)
        if not limit.keys:
            limit.since = now
        limit.keys += key
        count_by(self.stats.rate_limited, name, 1)
        return False

    def _summarise(self, run: _Run, out: List[Outgoing]) -> None:
        if not run.repeats:
            return
        record = run.record
        summary = {'ts': rfc3339_ns(run.last_sec, run.last_nanosec),
                   'level': level_name(record.level), 'logger': record.name,
                   'msg': f'last message repeated {run.repeats} times', 'file': record.file,
                   'function': record.function, 'line': record.line}
        out.append(Outgoing(jsonutil.dumps(summary), level_char(record.level),
                            bytes(run.keys), weight=run.repeats))
        run.repeats = 0
        run.keys = bytearray()

    @staticmethod
    def _say_limited(name: str, limit: _Limit, out: List[Outgoing]) -> None:
        if not limit.pending:
            return
        keys = bytes(limit.keys)
        for loss in limit.pending.values():
            # The keys travel with the first marker: they are one atomic spool write.
            out.append(Outgoing(jsonutil.dumps(loss.record()), MARKER, keys, loss=loss))
            keys = b''
        limit.pending = {}
        limit.keys = bytearray()

    def expire(self, now: float, out: List[Outgoing]) -> None:
        """Close the windows that are over: summaries, markers; forget finished runs."""
        for name, run in list(self._runs.items()):
            if now - run.window_start >= self.window:
                if run.repeats:
                    self._summarise(run, out)
                    run.window_start = now
                else:
                    del self._runs[name]  # the run ended: the next one starts afresh
        for name, limit in list(self._limits.items()):
            if limit.pending and now - limit.since >= MARKER_PERIOD_S:
                self._say_limited(name, limit, out)
            elif not limit.pending and limit.tokens >= self.max_rate:
                del self._limits[name]  # full bucket and nothing pending: like a new node

    def flush(self, out: List[Outgoing]) -> None:
        """Say everything pending and forget all state (shutdown, or too many nodes)."""
        for run in self._runs.values():
            self._summarise(run, out)
        for name, limit in self._limits.items():
            self._say_limited(name, limit, out)
        self._runs.clear()
        self._limits.clear()

    @property
    def pending(self) -> int:
        """Return how many records suppressed or dropped no summary or marker has said yet."""
        return (sum(run.repeats for run in list(self._runs.values()))
                + sum(loss.count for limit in list(self._limits.values())
                      for loss in list(limit.pending.values())))


def count_by(counters: Dict[Any, int], key: Any, count: int) -> None:
    """Add to a counter keyed by logger (or (reason, logger)), bounded in loggers."""
    if key not in counters and len(counters) >= MAX_LOGGERS_COUNTED:
        key = (key[0], OTHER_LOGGERS) if isinstance(key, tuple) else OTHER_LOGGERS
    counters[key] = counters.get(key, 0) + count


__all__ = ['Batch', 'BatchLayout', 'count_by', 'evict_level', 'FloodGuard', 'FloodStats',
           'level_char', 'LEVEL_ORDER', 'Loss', 'MARKER', 'MARKER_LOGGER', 'MEMORY_FULL',
           'merge_batches', 'Outgoing', 'RATE_LIMITED', 'SPOOL_FULL']
