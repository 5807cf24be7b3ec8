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
Topic mirroring: one robot's ``ros/topics/echo`` stream republished as typed local topics.

On every (re)connection the mirror lists the remote topics and subscribes to those the
``topics`` and ``deny_topics`` globs select. On demand (``mirror_on_demand``), every
selected topic gets its local publisher from the listing at once, but flows from the robot
only while something local subscribes to it (demand.py), latched topics always. Each
message frame is serialised straight from its JSON (cdr_writer.py) or, when that fast path
declines it, decoded by the codec (which judges bad input), with the robot's frame prefix
applied to header frame ids, ``child_frame_id`` and TF transforms, and published under the
robot's namespace (a loop pass's messages together: publish_batch); remote ``/tf`` and
``/tf_static`` go to the global topics so one rviz sees every robot. Latched topics are
published transient-local (topic_qos). A bad frame is dropped and counted, an unknown type
is warned about once, a frame over ``echo_max_frame_bytes`` is refused by topic: nothing
else stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
import re
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from geometry_msgs.msg import TransformStamped

from .capability import MirrorContext, RemoteRobot
from .demand import Demand
from .publish_batch import PublishBatch
from .robot_clock import RobotClock
from .static_transforms import StaticTransforms
from .topic_qos import PublisherFactory, qos_profile, QosRules, TF_STATIC_TOPIC, TF_TOPIC
from ..codec.cdr_writer import CdrEncoder, may_hold_booleans, NotEncodable
from ..codec.json_codec import Codec
from ..codec.message_types import CodecError, prefixed_frame, UnknownType
from ..codec.rclpy_fast_paths import fast_paths
from ..common.drops import DropCounter
from ..common.globs import topic_selected
from ..transport.streams import StreamSpec
from ..transport.wire import (
    ECHO_STREAM, EchoMessage, EchoStatus, EchoTopics, FrameError, LIST_TOPICS_OP,
    MAX_LISTED_TOPICS, parse_echo_frame, subscribe_op, unsubscribe_op,
)

_log = logging.getLogger(__name__)

# Frames up to this many times echo_max_frame_bytes are read and refused by topic; a larger
# one makes the WebSocket library close the connection before reading it (bounded memory).
TRANSPORT_LIMIT_FACTOR = 2
# Topic and type names come from the robot: what is kept per name is bounded. A robot has
# at most as many mirrored topics as a listing may hold; a few oversized topics are named
# in diagnostics, a few unknown types remembered (more are dropped, counted, unnamed).
MAX_TOPICS = MAX_LISTED_TOPICS
MAX_NAMED = 64
_TOPIC_FIELD = re.compile(r'"topic"\s*:\s*"((?:[^"\\]|\\.){0,200})"')


def frame_topic(frame: str) -> str:
    """Return the topic an echo frame names, read from its ends only (it may be huge)."""
    match = _TOPIC_FIELD.search(frame[:1024]) or _TOPIC_FIELD.search(frame[-1024:])
    return match.group(1) if match else '(unknown topic)'


@dataclass
class TopicStats:
    """Counters of one robot's topic mirror (written on the loop, read by diagnostics)."""

    frames: int = 0
    published: int = 0
    subscribed: int = 0  # topics the robot streams now
    listed: int = 0  # topics its last listing offered (selected, of a known type)


class TopicMirror:
    """
    Mirrors one robot's topic echo stream into the local graph (a capability).

    Threads: the asyncio loop runs its handlers and owns its state; the executor's thread
    calls only :meth:`diagnostic_values` (integers and a DropCounter snapshot).
    """

    def __init__(self, robot_label: str, namespace: str, frame_prefix: str,
                 publisher_factory: PublisherFactory, allow: Tuple[str, ...] = ('/**',),
                 deny: Tuple[str, ...] = (), qos_rules: QosRules = QosRules(),
                 throttle_ms: Optional[Dict[str, int]] = None, fleet_frame: str = '',
                 max_frame_bytes: int = 16 << 20,
                 static_transforms: Optional[StaticTransforms] = None,
                 on_demand: bool = False, linger_s: float = 5.0,
                 on_watched: Optional[Callable[[], None]] = None,
                 clock: Optional[RobotClock] = None) -> None:
        self.namespace = namespace.rstrip('/')
        # Every stamped message is a sample of the robot's clock; restamping (if asked)
        # happens wherever a header is written, on either path.
        self._clock = clock or RobotClock()
        restamp = self._clock.hook()
        self.codec = Codec(frame_prefix, restamp)
        self.cdr = CdrEncoder(frame_prefix, restamp) if fast_paths().cdr_publish else None
        self.stats = TopicStats()
        self.drops = DropCounter(_log, f'{robot_label} topics')
        self.topic_rates: Dict[str, int] = {}
        self._make_publisher = publisher_factory
        self._batch = PublishBatch(self.drops, self.stats)
        self._allow, self._deny = allow, deny
        self._qos_rules = qos_rules
        self._max_frame_bytes = max_frame_bytes
        self.oversized: Dict[str, int] = {}  # topic -> size of its last refused frame
        self._throttle_ms = throttle_ms or {}
        self._publishers: Dict[str, Tuple[str, Any]] = {}  # remote topic -> (type, publisher)
        self._unknown_types: Set[str] = set()
        self._static_transforms: Dict[str, Any] = {}  # child frame -> TransformStamped
        self._static_tf = static_transforms or StaticTransforms(
            publisher_factory, qos_profile(qos_rules.for_topic(TF_STATIC_TOPIC)))
        self._fleet_frame = fleet_frame
        self._parents: Set[str] = set()
        self._children: Set[str] = set()
        self._linked_roots: Set[str] = set()
        self._stream: Any = None
        self._sends: Set[asyncio.Task] = set()
        self._selection: Dict[str, bool] = {}
        self._latched_topics: Dict[str, bool] = {}  # selected topics only: bounded alike
        # On demand: each topic's demand, what the listing offers, what the robot streams.
        self._on_demand, self._linger_s = on_demand, linger_s
        self._on_watched = on_watched
        self._demands: Dict[str, Demand] = {}
        self._listed: Dict[str, str] = {}  # remote topic -> type
        self._streaming: Set[str] = set()

    def stream_spec(self) -> StreamSpec:
        return StreamSpec(ECHO_STREAM, self.on_frame, on_connect=self.on_connect,
                          on_disconnect=self.on_disconnect, options={
                              'max_frame_bytes': self._max_frame_bytes * TRANSPORT_LIMIT_FACTOR,
                              'frame_limit_name':
                                  f'{TRANSPORT_LIMIT_FACTOR} x echo_max_frame_bytes'})

    def activity(self) -> str:
        return f'streaming {self.stats.subscribed} of {self.stats.listed} topics'

    def watched(self) -> bool:
        return any(demand.wanted for demand in list(self._demands.values()))

    def diagnostic_values(self) -> Dict[str, Any]:
        values: Dict[str, Any] = {
            'topics_subscribed': self.stats.subscribed, 'topics_listed': self.stats.listed,
            'topic_frames': self.stats.frames,
            'topic_messages_published': self.stats.published, 'topic_drops': self.drops.total}
        values.update({f'topic_drops.{reason}': count
                       for reason, count in self.drops.snapshot().items()})
        values.update({f'oversized_frame_bytes.{topic}': size
                       for topic, size in dict(self.oversized).items()})
        return values

    def warnings(self) -> List[str]:
        return [f'{topic} not mirrored: its {size} byte frames exceed echo_max_frame_bytes '
                f'({self._max_frame_bytes}); raise it to mirror them'
                for topic, size in sorted(dict(self.oversized).items())]

    def publishers(self) -> List[Any]:
        return [publisher for _, publisher in self._publishers.values()]

    def stop(self) -> None:
        for task in list(self._sends):
            task.cancel()
        for demand in self._demands.values():
            demand.stop()
        self._batch.flush()  # before the fleet destroys the publishers

    def local_name(self, remote_topic: str) -> str:
        if remote_topic in (TF_TOPIC, TF_STATIC_TOPIC):
            return remote_topic
        return self.namespace + remote_topic

    # -- stream callbacks -----------------------------------------------------------------

    async def on_connect(self, stream: Any) -> None:
        """Ask for the topic list on every (re)connection; subscriptions follow from it."""
        self._stream = stream
        self._streaming.clear()
        await stream.send(LIST_TOPICS_OP)

    def on_disconnect(self, stream: Any) -> None:
        self._stream = None
        self._streaming.clear()
        self.stats.subscribed = 0

    def on_frame(self, frame: Any) -> None:
        self.stats.frames += 1
        if len(frame) > self._max_frame_bytes and isinstance(frame, str):
            self._refuse_oversized(frame)
            return
        try:
            parsed = parse_echo_frame(frame)
        except FrameError as exc:
            self.drops.drop('malformed frame', str(exc))
            return
        if isinstance(parsed, EchoMessage):
            self._on_message(parsed, frame)
        elif isinstance(parsed, EchoTopics):
            self._on_topics(parsed)
        elif isinstance(parsed, EchoStatus):
            _log.warning('%s: remote %s on %s: %s', self.namespace, parsed.level,
                         parsed.topic or 'stream', parsed.msg[:200])

    def _refuse_oversized(self, frame: str) -> None:
        topic = frame_topic(frame)
        if topic not in self.oversized and len(self.oversized) >= MAX_NAMED:
            self.drops.count('oversized frame')
            return
        if topic not in self.oversized:
            _log.warning('%s: a %d byte frame of %s exceeds echo_max_frame_bytes (%d): the '
                         'topic is not mirrored until the parameter is raised', self.namespace,
                         len(frame), topic, self._max_frame_bytes)
        self.oversized[topic] = len(frame)
        self.drops.count('oversized frame')

    def _on_topics(self, listing: EchoTopics) -> None:
        offered = {}
        for entry in listing.topics:
            topic, type_name = entry['topic'], entry['type']
            if not topic_selected(topic, self._allow, self._deny):
                continue
            try:
                self.codec.plan_for(type_name)
            except UnknownType as exc:
                self._warn_unknown(type_name, str(exc))
                continue
            offered[topic] = type_name
        self._listed = offered
        self.stats.listed = len(offered)
        if self._on_demand:
            for topic, type_name in offered.items():
                self._demand_publisher(topic, type_name)
            offered = {topic: type_name for topic, type_name in offered.items()
                       if self._latched(topic) or self._wanted(topic)}
        self._streaming = set(offered)
        self.stats.subscribed = len(offered)
        self._send([subscribe_op(topic, self._throttle_ms.get(topic, 0)) for topic in offered])

    def _send(self, frames: List[str]) -> None:
        if frames and self._stream is not None:
            # The loop keeps only weak references to tasks: hold it until it ends.
            task = asyncio.ensure_future(self._send_all(self._stream, frames))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    # -- on demand ------------------------------------------------------------------------

    def _latched(self, topic: str) -> bool:
        return self._qos_rules.for_topic(topic).durability == 'transient_local'

    def _wanted(self, topic: str) -> bool:
        demand = self._demands.get(topic)
        return demand is not None and demand.wanted

    def _demand_publisher(self, topic: str, type_name: str) -> None:
        """Create a listed topic's publisher now, watched for subscribers unless latched."""
        if topic in self._publishers or topic == TF_STATIC_TOPIC:  # /tf_static: one for all
            return
        if self._latched(topic):
            self._publisher(topic, type_name, self.codec.plan_for(type_name).cls)
            return
        if len(self._publishers) >= MAX_TOPICS:
            self.drops.drop('too many topics', f'{topic}: {MAX_TOPICS} topics of this robot '
                            'are mirrored already, the most one robot may have')
            return
        demand = Demand(asyncio.get_running_loop(), self._linger_s,
                        lambda wanted: self._demand_changed(topic, wanted))
        try:
            publisher = demand.publisher(
                self._make_publisher, self.codec.plan_for(type_name).cls,
                self.local_name(topic), qos_profile(self._qos_rules.for_topic(topic)))
        except Exception as exc:  # noqa: BLE001 - e.g. a remote name invalid locally
            self.drops.drop('cannot publish', f'{topic}: {exc}')
            return
        self._demands[topic] = demand
        self._publishers[topic] = (type_name, publisher)

    def _demand_changed(self, topic: str, wanted: bool) -> None:
        """Subscribe to a topic upstream when something local subscribes; let it go after."""
        if wanted and self._stream is not None and topic in self._listed and (
                topic not in self._streaming):
            self._streaming.add(topic)
            self._send([subscribe_op(topic, self._throttle_ms.get(topic, 0))])
        elif not wanted and topic in self._streaming:
            self._streaming.discard(topic)
            self._send([unsubscribe_op(topic)])
        self.stats.subscribed = len(self._streaming)
        if self._on_watched is not None:
            self._on_watched()

    @staticmethod
    async def _send_all(stream: Any, frames: list) -> None:
        for frame in frames:
            if not await stream.send(frame):
                return  # disconnected: on_connect resubscribes

    def _selected(self, topic: str) -> bool:
        # Glob matching once per topic, not once per message.
        verdict = self._selection.get(topic)
        if verdict is None:
            if len(self._selection) >= 2 * MAX_TOPICS:  # names from the robot: bounded
                self._selection.clear()
            verdict = self._selection[topic] = topic_selected(topic, self._allow, self._deny)
        return verdict

    def _on_message(self, echo: EchoMessage, frame: str) -> None:
        if not self._selected(echo.topic):
            self.drops.drop('unrequested topic', echo.topic)
            return
        if echo.type in self._unknown_types:
            self.drops.count('unknown type')
            return
        latched = self._latched_topics.get(echo.topic)
        if latched is None:
            if len(self._latched_topics) >= 2 * MAX_TOPICS:  # names from the robot: bounded
                self._latched_topics.clear()
            latched = self._latched_topics[echo.topic] = self._latched(echo.topic)
        self._clock.received(time.time_ns(), echo.msg, sample=not latched)
        if (self.cdr is not None and echo.topic != TF_STATIC_TOPIC
                and self.cdr.supports(echo.type) and not may_hold_booleans(frame)):
            try:
                data = self.cdr.encode(echo.type, echo.msg)
            except NotEncodable:
                pass  # the codec's path: the message, or the precise reason it is dropped
            else:
                self._publish_serialised(echo, data)
                return
        try:
            message = self.codec.decode(echo.type, echo.msg)
        except UnknownType as exc:
            self._warn_unknown(echo.type, str(exc))
            self.drops.count('unknown type')
            return
        except CodecError as exc:
            self.drops.drop('invalid message', f'{echo.topic} ({echo.type}): {exc}')
            return
        if echo.topic == TF_STATIC_TOPIC:
            # Late joiners get one latched message: keep the robot's whole tree in it.
            for transform in message.transforms:
                self._static_transforms[transform.child_frame_id] = transform
            if self._fleet_frame:
                self._link_message_roots(message)
            if self._publish_static(type(message)):
                self.stats.published += 1
            return
        publisher = self._publisher(echo.topic, echo.type, type(message))
        if publisher is None:
            return
        self._batch.publish(publisher, message)
        if self._fleet_frame and echo.topic == TF_TOPIC and self._link_message_roots(message):
            self._publish_static(type(message))

    def _publish_serialised(self, echo: EchoMessage, data: bytes) -> None:
        plan = self.codec.plan_for(echo.type)
        publisher = self._publisher(echo.topic, echo.type, plan.cls)
        if publisher is None:
            return
        self._batch.publish(publisher, data)
        if self._fleet_frame and echo.topic == TF_TOPIC:
            prefix = self.codec.frame_prefix
            pairs = [(prefixed_frame(prefix, t.get('header', {}).get('frame_id', '')),
                      prefixed_frame(prefix, t.get('child_frame_id', '')))
                     for t in echo.msg.get('transforms', ())]
            if self._link_roots(pairs, lambda: plan.decode(echo.msg).transforms[0].header.stamp):
                self._publish_static(plan.cls)

    def _publish_static(self, tf_type: type) -> bool:
        return self._static_tf.update(self.namespace, list(self._static_transforms.values()),
                                      tf_type, self.drops)

    def _publisher(self, topic: str, type_name: str, cls: type) -> Any:
        entry = self._publishers.get(topic)
        if entry is not None:
            if entry[0] != type_name:
                self.drops.drop('type changed', f'{topic} was {entry[0]}, now {type_name}')
                return None
            return entry[1]
        if len(self._publishers) >= MAX_TOPICS:
            self.drops.drop('too many topics', f'{topic}: {MAX_TOPICS} topics of this robot '
                            'are mirrored already, the most one robot may have')
            return None
        try:
            publisher = self._make_publisher(cls, self.local_name(topic),
                                             qos_profile(self._qos_rules.for_topic(topic)))
        except Exception as exc:  # noqa: BLE001 - e.g. a remote name invalid locally
            self.drops.drop('cannot publish', f'{topic}: {exc}')
            return None
        self._publishers[topic] = (type_name, publisher)
        return publisher

    def _link_message_roots(self, message: Any) -> bool:
        return self._link_roots(
            [(t.header.frame_id, t.child_frame_id) for t in message.transforms],
            lambda: message.transforms[0].header.stamp)

    def _link_roots(self, edges: List[Tuple[str, str]], stamp: Callable[[], Any]) -> bool:
        """
        Hang every root of the robot's TF tree under the fleet frame (identity).

        ``edges`` are a TF message's (parent, child) frames; ``stamp`` gives the links'
        stamp, asked for only when they change. A root linked early (``base_link`` from
        ``/tf_static`` before ``/tf`` said ``odom -> base_link``) loses its link once it
        shows a parent of its own: a frame with two parents would flip between them in
        every tf2 buffer. Returns whether the robot's static transforms changed.
        """
        for parent, child in edges:
            if parent != self._fleet_frame:  # not our own links
                self._parents.add(parent)
                self._children.add(child)
        roots = self._parents - self._children - self._linked_roots - {'', self._fleet_frame}
        parented = self._linked_roots & self._children
        if not roots and not parented:
            return False
        for frame in parented:
            self._linked_roots.discard(frame)
            link = self._static_transforms.get(frame)
            if link is not None and link.header.frame_id == self._fleet_frame:
                del self._static_transforms[frame]
        for root in sorted(roots):
            link = TransformStamped(child_frame_id=root)
            link.header.stamp, link.header.frame_id = stamp(), self._fleet_frame
            link.transform.rotation.w = 1.0
            self._static_transforms[root] = link
            self._linked_roots.add(root)
        return True

    def _warn_unknown(self, type_name: str, reason: str) -> None:
        if type_name not in self._unknown_types and len(self._unknown_types) < MAX_NAMED:
            self._unknown_types.add(type_name)
            _log.warning('%s: %s; its topics are not mirrored (install the package that '
                         'defines it)', self.namespace, reason)


def build(robot: RemoteRobot, context: MirrorContext) -> TopicMirror:
    """Return the mirror of a robot's topics (every robot has one)."""
    config = context.config
    return TopicMirror(robot.ros_name, robot.namespace, robot.frame_prefix,
                       context.create_publisher, config.topics, config.deny_topics,
                       QosRules.of(config), config.topic_throttle, config.fleet_frame,
                       config.echo_max_frame_bytes, context.static_transforms,
                       config.mirror_on_demand, config.on_demand_linger_s, context.on_watched,
                       context.clock)
