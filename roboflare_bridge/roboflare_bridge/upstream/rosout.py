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
Reading ``/rosout`` for upstream forwarding: the records, their identity, the subscriptions.

A record's identity is the DDS sample it arrived in, never its stamp (stamps step back,
repeat and are zero on real robots). :func:`sample_key` hashes what identifies a sample:
the writer's GID where rclpy reports it (Kilted), its publication sequence number and
source timestamp, and the serialised record itself. On Kilted that is exact (a writer
and its sequence); on Jazzy, which reports no GID, two distinct samples share a key only
if two writers published byte-identical records with the same sequence number in the
same nanosecond. :class:`SeenSamples` remembers recent keys, so that a sample delivered
twice (transient-local history replayed to a restarted bridge, or one sample reaching
both subscriptions below) is forwarded once.

Subscriptions: one reliable, transient-local reader, so a restarted bridge gets each
node's recent history. A volatile publisher (a script publishing ``Log`` with default
QoS) cannot match it; when one appears, a second, volatile reader is created for it, whose
samples the consumer holds back briefly (see LogForwarder.on_volatile_sample). Everything
here runs in the rclpy executor's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import blake2b
import logging
import struct
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Protocol, Set

from rcl_interfaces.msg import Log
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..codec.rclpy_fast_paths import take_queued
from ..common import jsonutil

_log = logging.getLogger(__name__)

LEVEL_NAMES = {Log.DEBUG: 'debug', Log.INFO: 'info', Log.WARN: 'warn', Log.ERROR: 'error',
               Log.FATAL: 'fatal'}
LEVEL_VALUES = {name: value for value, name in LEVEL_NAMES.items()}
MAX_MSG_CHARS = 64 << 10
# rcl's /rosout publishers keep their last 1000 records for 10 s (transient local).
ROSOUT_DEPTH = 1000
ROSOUT_LIFESPAN_S = 10
KEY_BYTES = 8

SampleCallback = Callable[[bytes, Mapping[str, Any]], None]


def rosout_qos(depth: int = ROSOUT_DEPTH,
               durability: DurabilityPolicy = DurabilityPolicy.TRANSIENT_LOCAL) -> QoSProfile:
    """Return /rosout's QoS: reliable, transient local (rclpy on Jazzy has no preset)."""
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE, durability=durability,
                      lifespan=Duration(seconds=ROSOUT_LIFESPAN_S))


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
    name, msg, file, function = strings
    return RosoutRecord(sec, nanosec, level, name, msg, file, function, line)


_SAMPLE_HEADER = struct.Struct('<qQ')


def sample_key(data: bytes, info: Mapping[str, Any]) -> bytes:
    """Return the identity of one serialised /rosout sample (see the module docstring)."""
    gid = info.get('publisher_gid')
    writer = gid.get('data', b'') if isinstance(gid, dict) else b''
    header = _SAMPLE_HEADER.pack(info.get('source_timestamp') or 0,
                                 info.get('publication_sequence_number') or 0)
    return blake2b(header + bytes(writer) + data, digest_size=KEY_BYTES).digest()


class SeenSamples:
    """
    Keys of the samples taken recently, in two generations of ``generation`` keys each.

    Lookups and inserts are O(1); memory stays below two generations (about 4 MB). The older
    generation is dropped when the newer fills, so a key is remembered for at least
    ``generation`` later samples: more than the forwarder holds back from the volatile
    reader (20,000), whose copies this memory recognises.
    """

    def __init__(self, generation: int = 1 << 15) -> None:
        self.generation = generation
        self._current: Set[bytes] = set()
        self._previous: Set[bytes] = set()

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def add(self, key: bytes) -> bool:
        """Remember key; return False if it was already remembered (a repeat)."""
        if key in self._current or key in self._previous:
            return False
        if len(self._current) >= self.generation:
            self._previous, self._current = self._current, set()
        self._current.add(key)
        return True

    def update(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.add(key)


TIMESTAMP_CACHE_SIZE = 64  # formatted seconds: records come in runs of one second
_TS_CACHE: Dict[int, str] = {}


def rfc3339_ns(sec: int, nanosec: int) -> str:
    """Return a ROS time as an RFC 3339 UTC string with nanoseconds (any sec, even < 0)."""
    base = _TS_CACHE.get(sec)
    if base is None:  # many records share a second: format it once
        if len(_TS_CACHE) > TIMESTAMP_CACHE_SIZE:
            _TS_CACHE.clear()
        base = _TS_CACHE[sec] = datetime.fromtimestamp(sec, tz=timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%S')
    return f'{base}.{nanosec:09d}Z'


def record_json(record: RosoutRecord) -> str:
    """Return a /rosout record as the contract's JSON log record, its stamp as it is."""
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


def drain_subscription(subscription: Any, callback: SampleCallback, limit: int = 2000) -> int:
    """
    Take and handle what else is queued on ``subscription``; return how many.

    The executor hands over one message per wake-up and rebuilds its wait set each time,
    which caps a node with many services near 2,000 messages/s; /rosout's writer then
    overwrites what the reader has not taken. Draining the queue from the callback keeps up
    (rclpy_fast_paths.take_queued; without it, the executor's pace).
    """
    return take_queued(subscription, callback, limit)


class RosoutConsumer(Protocol):
    """What takes the samples of :class:`RosoutSubscriptions` (in the executor's thread)."""

    def on_sample(self, data: bytes, info: Mapping[str, Any]) -> None: ...

    def on_volatile_sample(self, data: bytes, info: Mapping[str, Any]) -> None: ...

    def release_volatile(self) -> None: ...


class RosoutSubscriptions:
    """
    The bridge's /rosout readers: transient local always, volatile once a publisher needs it.

    The volatile reader also receives every transient-local writer's live samples: the
    consumer holds those back briefly and tells repeats apart with :func:`sample_key`.
    """

    RELEASE_PERIOD_S = 0.1

    def __init__(self, node: Any, consumer: RosoutConsumer) -> None:
        from rclpy.event_handler import SubscriptionEventCallbacks
        self._node = node
        self._consumer = consumer
        self._announced: Set[bytes] = set()
        self.volatile: Optional[Any] = None
        self._unnamed_publishers = False
        self.transient_local = self._subscribe(
            DurabilityPolicy.TRANSIENT_LOCAL, consumer.on_sample,
            SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible))

    def _subscribe(self, durability: DurabilityPolicy, handle: SampleCallback,
                   events: Any = None) -> Any:
        subscription = None

        def on_message(data: bytes, info: Mapping[str, Any]) -> None:
            handle(data, info)
            drain_subscription(subscription, handle)
        # Raw: the forwarder reads the few fields it needs from the serialised message.
        subscription = self._node.create_subscription(
            Log, '/rosout', on_message, rosout_qos(durability=durability), raw=True,
            event_callbacks=events)
        return subscription

    def _release_volatile(self) -> None:
        # What the transient-local reader holds goes first: held copies of it are repeats.
        drain_subscription(self.transient_local, self._consumer.on_sample)
        self._consumer.release_volatile()
        if self._unnamed_publishers:
            self._announce_volatile_publishers()

    def _on_incompatible(self, event: Any) -> None:
        """Add a volatile reader: a /rosout publisher cannot match the transient-local one."""
        if self.volatile is None:
            self.volatile = self._subscribe(DurabilityPolicy.VOLATILE,
                                            self._consumer.on_volatile_sample)
            self._node.create_timer(self.RELEASE_PERIOD_S, self._release_volatile)
        self._announce_volatile_publishers()

    def _announce_volatile_publishers(self) -> None:
        """Say once per volatile publisher that it is forwarded (once its node is known)."""
        self._unnamed_publishers = False
        for endpoint in self._node.get_publishers_info_by_topic('/rosout'):
            gid = bytes(endpoint.endpoint_gid)
            if (endpoint.qos_profile.durability != DurabilityPolicy.VOLATILE
                    or gid in self._announced):
                continue
            if endpoint.node_name.startswith('_NODE_NAME_UNKNOWN'):
                self._unnamed_publishers = True  # discovered before its node: ask again
                continue
            self._announced.add(gid)
            _log.warning(
                '/rosout publisher of %s is volatile: forwarding it through a volatile '
                'subscription; what it logs while the bridge is down cannot be recovered',
                f'{endpoint.node_namespace.rstrip("/")}/{endpoint.node_name}')


__all__ = ['LEVEL_NAMES', 'LEVEL_VALUES', 'RosoutConsumer', 'RosoutRecord', 'RosoutSubscriptions',
           'SeenSamples',
           'drain_subscription', 'level_name', 'normalise_logger', 'parse_log_cdr',
           'record_json', 'rosout_qos', 'sample_key']
