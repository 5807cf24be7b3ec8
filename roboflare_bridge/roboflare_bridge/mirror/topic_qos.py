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
The local QoS of each mirrored topic, and its rclpy profile.

One place for the mirror, the camera, the fleet status and the rviz config, whose displays
must match the publishers.

It follows the ``transient_local_topics`` and ``qos_overrides`` parameters. Mirrored
topics are reliable and volatile unless told otherwise. Latched topics are transient-local
with depth 1, so a late subscriber (rviz's Map and RobotModel displays subscribe that way)
still gets the one message the robot published long ago. A reliable publisher serves
reliable and best-effort subscribers alike; a transient-local one serves volatile and
transient-local subscribers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Tuple

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..common.globs import glob_match
from ..parameters import BridgeConfig, RELIABILITY_POLICIES

ALWAYS_TRANSIENT_LOCAL = ('/tf_static', '/map', '/robot_description')
TF_TOPIC = '/tf'
TF_STATIC_TOPIC = '/tf_static'

# Node.create_publisher: (message class, topic, QoSProfile, event_callbacks=...)
PublisherFactory = Callable[..., Any]


def lean_publishers(create_publisher: PublisherFactory) -> PublisherFactory:
    """
    Return a publisher factory whose publishers lack rclpy's default event handlers.

    rclpy gives each publisher two (warnings of an incompatible QoS or type), and each is a
    waitable the executor walks at every wake-up, in time quadratic in their number (Jazzy):
    a fleet's 600 publishers made every timer tick cost milliseconds. A subscriber with an
    incompatible QoS is still warned by its own node (rviz says so).
    """
    def create(cls: type, topic: str, qos: QoSProfile, event_callbacks: Any = None) -> Any:
        return create_publisher(cls, topic, qos, event_callbacks=event_callbacks or
                                PublisherEventCallbacks(use_default_callbacks=False))
    return create


@dataclass(frozen=True)
class TopicQos:
    """What a mirrored topic's local publisher offers."""

    reliability: str = 'reliable'
    durability: str = 'volatile'
    depth: int = 10


@dataclass(frozen=True)
class QosRules:
    """Which remote topics get which local QoS; later overrides win."""

    transient_local: Tuple[str, ...] = ()
    overrides: Tuple[Tuple[str, str], ...] = ()  # (topic glob, policy), in order

    @classmethod
    def of(cls, config: BridgeConfig) -> 'QosRules':
        """Return the rules that ``transient_local_topics`` and ``qos_overrides`` set."""
        return cls(config.transient_local_topics, config.qos_overrides)

    def for_topic(self, remote_topic: str) -> TopicQos:
        latched = remote_topic in ALWAYS_TRANSIENT_LOCAL or any(
            glob_match(remote_topic, pattern) for pattern in self.transient_local)
        reliability, durability = 'reliable', 'transient_local' if latched else 'volatile'
        for pattern, policy in self.overrides:
            if glob_match(remote_topic, pattern):
                if policy in RELIABILITY_POLICIES:
                    reliability = policy
                else:
                    durability = policy
        if durability == 'transient_local':
            depth = 1  # the last message, kept for late subscribers
        else:
            depth = 100 if remote_topic == TF_TOPIC else 10  # /tf: many small bursts
        return TopicQos(reliability, durability, depth)


# Camera images: few frames queued per subscriber, they are big and only the newest matters.
IMAGE = TopicQos('reliable', 'volatile', 2)
LATCHED = TopicQos('reliable', 'transient_local', 1)


def qos_profile(qos: TopicQos) -> QoSProfile:
    """Return the rclpy profile of a topic's publisher."""
    return QoSProfile(
        depth=qos.depth, history=HistoryPolicy.KEEP_LAST,
        reliability=(ReliabilityPolicy.BEST_EFFORT if qos.reliability == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if qos.durability == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


__all__ = ['ALWAYS_TRANSIENT_LOCAL', 'IMAGE', 'LATCHED', 'PublisherFactory', 'QosRules',
           'TF_STATIC_TOPIC', 'TF_TOPIC', 'TopicQos', 'lean_publishers', 'qos_profile']
