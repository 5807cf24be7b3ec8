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
The mirrored robots: who each one is locally, and the streams that mirror it.

A robot's local identity comes from its name in the control plane: ``{robot}`` in
``namespace_format`` and ``frame_prefix_format`` is that name made a valid ROS name. The
name is fetched once (retrying while the API is unreachable) before anything is published,
so namespaces never change under a running rviz.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
from typing import Any, Dict, List, Optional

from .api_client import ApiClient
from .backoff import retry_backoff
from .camera import CameraMirror, DecodeWorker
from .capability import Capability, open_stream
from .credentials import Token
from .log_mirror import LogMirror
from .mirror import qos_profile, StaticTransforms, TF_STATIC_TOPIC, TopicMirror
from .params import BridgeConfig, ros_name
from .resources import ApiError, FORBIDDEN, NOT_FOUND, UNAUTHORIZED
from .streams import StreamClient

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteRobot:
    """A mirrored robot's id and its local names."""

    id: str  # noqa: A003 - the contract's field name
    name: str
    ros_name: str
    namespace: str
    frame_prefix: str

    @classmethod
    def from_name(cls, robot_id: str, name: str, config: BridgeConfig) -> 'RemoteRobot':
        safe = ros_name(name or robot_id)
        return cls(robot_id, name, safe, config.namespace_format.format(robot=safe),
                   config.frame_prefix_format.format(robot=safe))


@dataclass
class RobotStreams:
    """What runs for one mirrored robot: its capabilities and their streams."""

    robot: RemoteRobot
    capabilities: List[Capability]
    streams: List[StreamClient]


class Fleet:
    """
    Starts, holds and stops the mirrors of every robot in the ``robots`` parameter.

    Threads: :meth:`run` and :meth:`stop` run on the asyncio loop, which alone changes
    :attr:`robots`, :attr:`unresolved` and :attr:`refused`; diagnostics copy them (one
    C-level copy each).
    """

    def __init__(self, node: Any, config: BridgeConfig, api: ApiClient, token: Token) -> None:
        self._node = node
        self._config = config
        self._api = api
        self._token = token
        self.decode_worker = DecodeWorker() if config.camera and config.decode_images else None
        self._static_transforms = StaticTransforms(
            node.create_publisher, qos_profile(config.qos_rules().for_topic(TF_STATIC_TOPIC)))
        self.robots: Dict[str, RobotStreams] = {}
        self.unresolved: Dict[str, str] = dict.fromkeys(config.robots, 'resolving')
        self.refused: Dict[str, str] = {}  # robots the API will not give: not retried
        self._tasks: List[asyncio.Task] = []

    async def run(self) -> None:
        """Resolve every robot, then keep its streams running until cancelled."""
        self._tasks = [asyncio.ensure_future(self._run_robot(robot_id))
                       for robot_id in self._config.robots]
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        for entry in self.robots.values():
            for stream in entry.streams:
                await stream.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for entry in self.robots.values():
            for capability in entry.capabilities:
                capability.stop()
        if self.decode_worker is not None:
            self.decode_worker.stop()

    def _capabilities(self, robot: RemoteRobot) -> List[Capability]:
        """Return what the configuration mirrors of a robot."""
        config, create_publisher = self._config, self._node.create_publisher
        capabilities: List[Capability] = [TopicMirror(
            robot.ros_name, robot.namespace, robot.frame_prefix, create_publisher,
            config.topics, config.deny_topics, config.qos_rules(), config.topic_throttle,
            config.fleet_frame, config.echo_max_frame_bytes, self._static_transforms)]
        if config.camera:
            capabilities.append(CameraMirror(
                robot.ros_name, robot.namespace, robot.frame_prefix + config.camera_frame_id,
                create_publisher, lambda: self._node.get_clock().now().to_msg(),
                self.decode_worker, config.camera_max_frame_bytes))
        if config.remote_logs:
            capabilities.append(LogMirror(robot.ros_name, robot.namespace, create_publisher))
        return capabilities

    async def _run_robot(self, robot_id: str) -> None:
        robot = await self._resolve(robot_id)
        if robot is None:
            return
        config = self._config
        capabilities = self._capabilities(robot)
        streams = [open_stream(capability.stream_spec(), self._api.base_url, robot.id,
                               self._token, config.stream_ping_interval_s,
                               config.stream_ping_timeout_s) for capability in capabilities]
        self.robots[robot_id] = RobotStreams(robot, capabilities, streams)
        self.unresolved.pop(robot_id, None)
        _log.info('mirroring robot %s (%s) under %s, frames prefixed %r', robot.name,
                  robot.id, robot.namespace, robot.frame_prefix)
        await asyncio.gather(*(stream.run() for stream in streams))

    async def _resolve(self, robot_id: str) -> Optional[RemoteRobot]:
        backoff = retry_backoff()
        while True:
            try:
                robot = await self._api.get_robot(robot_id)
                return RemoteRobot.from_name(robot.id, robot.name, self._config)
            except ApiError as error:
                if error.code in (NOT_FOUND, UNAUTHORIZED, FORBIDDEN):
                    _log.error('robot %s cannot be mirrored: %s', robot_id, error)
                    self.refused[robot_id] = str(error)
                    self.unresolved.pop(robot_id, None)
                    return None
                self.unresolved[robot_id] = str(error)
                delay = backoff.next_delay()
                _log.warning('robot %s: %s; retrying in %.1fs', robot_id, error, delay)
                await asyncio.sleep(delay)
