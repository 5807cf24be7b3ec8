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
What every mirror of a remote robot is, and what it is built from.

A mirror (its topics, its camera, its logs: topics.py, camera.py, remote_logs.py) is the
consumer of one of the robot's streams (transport.streams.StreamConsumer) that publishes
locally: it also says what a user must act on and which publishers it created. Each mirror
module exposes ``build(robot, context)``, which returns its mirror of a robot, or None when
the configuration does not mirror that stream; the fleet builds every robot's mirrors
from that one list of builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Protocol, Tuple

from .jpeg_decoding import DecodeWorker
from .robot_clock import RobotClock
from .static_transforms import StaticTransforms
from .topic_qos import PublisherFactory
from ..parameters import BridgeConfig
from ..transport.streams import StreamConsumer

Stamp = Tuple[int, int]  # (sec, nanosec)


class Mirror(StreamConsumer, Protocol):
    """One stream of a remote robot, published locally."""

    def warnings(self) -> List[str]:
        """Return what a user must act on (the robot's status is WARN while there are any)."""

    def publishers(self) -> List[Any]:
        """Return the publishers it created: destroyed when its robot stops being mirrored."""

    def activity(self) -> str:
        """Say what flows from the robot now, for its status ("camera off")."""

    def watched(self) -> bool:
        """Return whether something local subscribes to what it mirrors (on demand)."""


@dataclass(frozen=True)
class RemoteRobot:
    """A mirrored robot's id and its local names."""

    id: str  # noqa: A003 - the contract's field name
    name: str
    ros_name: str
    namespace: str
    frame_prefix: str

    @classmethod
    def named(cls, robot_id: str, name: str, safe_name: str,
              config: BridgeConfig) -> 'RemoteRobot':
        return cls(robot_id, name, safe_name, config.namespace_format.format(robot=safe_name),
                   config.frame_prefix_format.format(robot=safe_name))


@dataclass(frozen=True)
class MirrorContext:
    """What a robot's mirrors are built from: the configuration, the node's resources."""

    config: BridgeConfig
    create_publisher: PublisherFactory
    static_transforms: StaticTransforms  # every robot's /tf_static, merged
    camera_clock: Callable[[], Stamp]  # camera.receipt_clock: when a frame was received
    decode_worker: Optional[DecodeWorker]  # shared by every camera; None: no decoding
    on_watched: Callable[[], None]  # called when a mirror's demand changes (on demand)
    clock: RobotClock  # this robot's: its offset, measured, and the restamping asked for


Build = Callable[[RemoteRobot, MirrorContext], Optional[Mirror]]

__all__ = ['Build', 'Mirror', 'MirrorContext', 'PublisherFactory', 'RemoteRobot', 'Stamp']
