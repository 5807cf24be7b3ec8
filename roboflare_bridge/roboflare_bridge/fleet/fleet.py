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
The mirrored robots: which ones, who each one is locally, and the streams that mirror it.

The fleet lists the org's robots at start and every ``robots_poll_interval_s`` (at once
after ``ros2 param set``), and mirrors those its selection names (robot_selection): a
robot that joins or starts to match is mirrored, one that leaves or stops matching has its
streams closed, its publishers destroyed and its ``/tf_static`` entries withdrawn. An
offline robot keeps its publishers (its latched map stays for rviz) while its streams wait
for it to come back. Every poll publishes the selection, latched, on ``/roboflare/robots``.

A robot's local identity comes from its name: ``{robot}`` in ``namespace_format`` and
``frame_prefix_format`` is that name made a valid ROS name; a renamed robot is mirrored
again under its new names.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from roboflare_interfaces import msg

from .selection import ros_names, Selection
from ..control.api_client import ApiClient
from ..control.resources import ApiError, Robot, ROBOT_OFFLINE
from ..mirror import camera, remote_logs, topics
from ..mirror.camera import DecodeWorker, receipt_clock
from ..mirror.capability import Build, Mirror, MirrorContext, RemoteRobot
from ..mirror.robot_clock import RobotClock
from ..mirror.static_transforms import StaticTransforms
from ..mirror.topic_qos import LATCHED, lean_publishers, qos_profile, QosRules, TF_STATIC_TOPIC
from ..parameters import BridgeConfig
from ..transport.backoff import retry_backoff
from ..transport.credentials import Token
from ..transport.streams import open_stream, StreamClient

_log = logging.getLogger(__name__)

ROBOTS_TOPIC = '/roboflare/robots'
# What is mirrored of each robot: every mirror module's builder, in the order they start.
MIRRORS: Tuple[Build, ...] = (topics.build, camera.build, remote_logs.build)
# Changing any of these re-creates every robot's mirrors (the selection alone does not).
MIRROR_SETTINGS = ('topics', 'deny_topics', 'topic_throttle', 'camera', 'decode_images',
                   'remote_logs', 'mirror_on_demand', 'on_demand_linger_s', 'restamp')


@dataclass
class RobotStreams:
    """What runs for one mirrored robot: its capabilities and, unless paused, their streams."""

    robot: RemoteRobot
    mirrors: List[Mirror]
    streams: List[StreamClient]
    clock: RobotClock  # its clock's offset from this machine's
    task: Optional[asyncio.Future] = None  # the streams running; None while offline


@dataclass(frozen=True)
class FleetStatus:
    """The fleet as diagnostics show it: copies taken on the executor's thread."""

    selected: Dict[str, Robot]  # the last poll's selection, by id
    mirrored: Dict[str, RobotStreams]  # by id, offline ones included
    unmatched: Dict[str, str]  # robots entries naming no robot of the org -> why
    poll_error: str
    poll_error_code: str
    polls: int
    removed: int


class Fleet:
    """
    Selects, starts, pauses and stops the mirrors of the org's robots.

    Threads: everything runs on the asyncio loop, which alone changes :attr:`robots`,
    :attr:`selected` and :attr:`unmatched`; diagnostics copy them (one C-level copy each).
    Publishers are destroyed on the executor's thread (their event handlers are in its
    wait set).
    """

    def __init__(self, node: Any, config: BridgeConfig, api: ApiClient, token: Token,
                 mirror_node: Any = None) -> None:
        self._node = node
        self._mirror_node = mirror_node or node  # owns the mirrors' publishers
        self._config = config
        self._api = api
        self._token = token
        self.decode_worker = DecodeWorker() if config.camera and config.decode_images else None
        self._camera_clock = receipt_clock(node)
        self._static_transforms = StaticTransforms(
            node.create_publisher, qos_profile(QosRules.of(config).for_topic(TF_STATIC_TOPIC)))
        self._status = node.create_publisher(msg.RobotArray, ROBOTS_TOPIC, qos_profile(LATCHED))
        self.robots: Dict[str, RobotStreams] = {}  # mirrored, by id
        self.selected: Dict[str, Robot] = {}  # the last poll's selection, by id
        self.unmatched: Dict[str, str] = {}  # robots entries naming no robot of the org
        self.poll_error = ''
        self.poll_error_code = ''
        self.polls = 0
        self.removed = 0
        self._warned: Set[str] = set()
        self._restart_mirrors = False
        self._wake: Optional[asyncio.Event] = None
        # By robot id, kept while the robot is selected: its estimate outlives its mirrors.
        self._clocks: Dict[str, RobotClock] = {}
        self._published_offsets: Dict[str, Optional[float]] = {}

    async def run(self) -> None:
        """List the org's robots and apply the selection, until cancelled."""
        self._wake = asyncio.Event()
        backoff = retry_backoff()
        while True:
            try:
                listing = await self._api.list_robots()
            except ApiError as error:
                self.poll_error, self.poll_error_code = str(error), error.code
                delay = min(backoff.next_delay(), self._config.robots_poll_interval_s)
                _log.warning("listing the org's robots failed: %s; retrying in %.1fs", error,
                             delay)
            else:
                self.poll_error, self.poll_error_code = '', ''
                self.polls += 1
                backoff.reset()
                await self._apply(listing)
                delay = self._config.robots_poll_interval_s
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def follow_clocks(self, period_s: float = 1.0, moved_s: float = 0.01) -> None:
        """Publish /roboflare/robots again when a robot's clock offset moved, until cancelled."""
        while True:
            await asyncio.sleep(period_s)
            for robot_id, entry in self.robots.items():
                offset, published = entry.clock.offset.offset_s, self._published_offsets.get(
                    robot_id)
                if offset is not None and (published is None or abs(offset - published)
                                           > moved_s):
                    self._publish_status()
                    break

    def reconfigure(self, config: BridgeConfig) -> None:
        """Take parameters changed at run time (asyncio loop): list the robots again now."""
        if any(getattr(config, name) != getattr(self._config, name)
               for name in MIRROR_SETTINGS):
            self._restart_mirrors = True
        self._config = config
        if config.camera and config.decode_images and self.decode_worker is None:
            self.decode_worker = DecodeWorker()
        if self._wake is not None:
            self._wake.set()

    def status(self) -> FleetStatus:
        """Return the fleet's state for diagnostics (executor thread: C-level copies)."""
        return FleetStatus(dict(self.selected), dict(self.robots), dict(self.unmatched),
                           self.poll_error, self.poll_error_code, self.polls, self.removed)

    async def stop(self) -> None:
        for robot_id in list(self.robots):
            await self._pause(self.robots[robot_id])
            for mirror in self.robots[robot_id].mirrors:
                mirror.stop()
        if self.decode_worker is not None:
            self.decode_worker.stop()

    # -- applying a listing ---------------------------------------------------------------

    async def _apply(self, listing: Sequence[Robot]) -> None:
        config = self._config
        selection = Selection(config.robots, config.deny_robots, config.shard_count,
                              config.shard_index)
        names, renamed = ros_names(listing)  # over the org: every bridge agrees
        chosen = {robot.id: robot for robot in selection.choose(listing)}
        for robot_id in chosen.keys() & renamed.keys():
            if renamed[robot_id] not in self._warned:
                self._warned.add(renamed[robot_id])
                _log.warning('%s', renamed[robot_id])
        self.unmatched = dict.fromkeys(selection.unmatched(listing),
                                       'names no robot of the org (looked for at every poll)')
        restart, self._restart_mirrors = self._restart_mirrors, False
        in_org = {robot.id for robot in listing}
        for robot_id, entry in list(self.robots.items()):
            robot = chosen.get(robot_id)
            if robot is None:
                reason = 'no longer selected' if robot_id in in_org else 'left the org'
            elif RemoteRobot.named(robot.id, robot.name, names[robot.id],
                                   config) != entry.robot:
                reason = f'renamed to {robot.name!r}'
            elif restart:
                reason = 'its parameters changed'
            else:
                continue
            await self._remove(entry, reason)
        for robot_id, robot in chosen.items():
            streams = self.robots.get(robot_id) or self._add(
                RemoteRobot.named(robot.id, robot.name, names[robot.id], config))
            if robot.status == ROBOT_OFFLINE and streams.task is not None:
                await self._pause(streams)
                _log.warning('robot %s (%s) is offline: its streams wait for it to come back',
                             robot.name, robot.id)
            elif robot.status != ROBOT_OFFLINE and streams.task is None:
                self._resume(streams)
        self.selected = chosen
        self._clocks = {robot_id: clock for robot_id, clock in self._clocks.items()
                        if robot_id in chosen}
        self._published_offsets = {robot_id: offset for robot_id, offset
                                   in self._published_offsets.items() if robot_id in chosen}
        self._publish_status()

    def _add(self, robot: RemoteRobot) -> RobotStreams:
        clock = self._clocks.get(robot.id) or RobotClock()
        clock.mode = self._config.restamp
        self._clocks[robot.id] = clock
        entry = RobotStreams(robot, self._mirrors(robot, clock), [], clock)
        self.robots[robot.id] = entry
        _log.info('mirroring robot %s (%s) under %s, frames prefixed %r', robot.name, robot.id,
                  robot.namespace, robot.frame_prefix)
        return entry

    def _resume(self, entry: RobotStreams) -> None:
        config = self._config
        entry.streams = [open_stream(mirror.stream_spec(), self._api.base_url,
                                     entry.robot.id, self._token, config.stream_ping_interval_s,
                                     config.stream_ping_timeout_s, config.stream_compression)
                         for mirror in entry.mirrors]
        entry.task = asyncio.gather(*(stream.run() for stream in entry.streams))

    async def _pause(self, entry: RobotStreams) -> None:
        for stream in entry.streams:
            await stream.stop()
        if entry.task is not None:
            entry.task.cancel()
            await asyncio.gather(entry.task, return_exceptions=True)
            entry.task = None

    async def _remove(self, entry: RobotStreams, reason: str) -> None:
        robot = entry.robot
        del self.robots[robot.id]
        await self._pause(entry)
        publishers = []
        for mirror in entry.mirrors:
            mirror.stop()
            publishers += mirror.publishers()
        self._destroy_publishers(publishers)
        self._static_transforms.withdraw(robot.namespace)
        self.removed += 1
        _log.warning('robot %s (%s) is no longer mirrored (%s): its topics under %s are gone',
                     robot.name, robot.id, reason, robot.namespace)

    def _destroy_publishers(self, publishers: List[Any]) -> None:
        def destroy() -> None:
            for publisher in publishers:
                self._mirror_node.destroy_publisher(publisher)
        executor = self._mirror_node.executor
        if executor is None:
            destroy()
        else:
            executor.create_task(destroy)

    def _publish_status(self) -> None:
        config, robots = self._config, list(self.selected.values())
        status = msg.RobotArray(stamp=self._node.get_clock().now().to_msg(),
                                shard_index=config.shard_index, shard_count=config.shard_count)
        for robot in robots:
            entry = self.robots.get(robot.id)
            status.robots.append(msg.Robot(id=robot.id, name=robot.name, status=robot.status))
            status.robots[-1].last_seen_at.sec, status.robots[-1].last_seen_at.nanosec = \
                robot.last_seen_at
            status.ros_names.append(entry.robot.ros_name if entry else '')
            status.namespaces.append(entry.robot.namespace if entry else '')
            status.mirrored.append(entry is not None and entry.task is not None)
            status.watched.append(entry is not None and any(m.watched() for m in entry.mirrors))
            offset = entry.clock.offset.offset_s if entry is not None else None
            status.clock_offsets_s.append(math.nan if offset is None else offset)
            self._published_offsets[robot.id] = offset
        self._status.publish(status)

    def _mirrors(self, robot: RemoteRobot, clock: RobotClock) -> List[Mirror]:
        """Return what the configuration mirrors of a robot."""
        context = MirrorContext(self._config, lean_publishers(self._mirror_node.create_publisher),
                                self._static_transforms, self._camera_clock, self.decode_worker,
                                self._publish_status, clock)
        built = (build(robot, context) for build in MIRRORS)
        return [mirror for mirror in built if mirror is not None]


__all__ = ['Fleet', 'FleetStatus', 'MIRRORS', 'RobotStreams', 'ROBOTS_TOPIC']
