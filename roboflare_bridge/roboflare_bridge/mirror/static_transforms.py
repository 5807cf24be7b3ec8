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
"""Every mirrored robot's static transforms, published merged on ``/tf_static``."""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from rclpy.qos import QoSProfile

from .topic_qos import PublisherFactory, TF_STATIC_TOPIC
from ..common.drops import DropCounter, publish_or_drop

_log = logging.getLogger(__name__)


class StaticTransforms:
    """
    Every mirrored robot's static transforms, published merged by one latched publisher.

    tf2_ros's StaticTransformBroadcaster does the same per node: a transient-local reader of
    any depth (1 included) gets the whole fleet's static tree in one message, and a robot's
    entries are replaced by publishing again.
    """

    def __init__(self, publisher_factory: PublisherFactory, qos: QoSProfile) -> None:
        self._make_publisher = publisher_factory
        self._qos = qos
        self._publisher: Any = None
        self._tf_type: Any = None
        self._by_robot: Dict[str, List[Any]] = {}
        self._drops = DropCounter(_log, 'static transforms')  # for withdrawals

    def update(self, robot: str, transforms: List[Any], tf_type: type,
               drops: DropCounter) -> bool:
        """Replace a robot's static transforms and publish everyone's; False if dropped."""
        self._by_robot[robot] = transforms
        self._tf_type = tf_type
        if self._publisher is None:
            self._publisher = self._make_publisher(tf_type, TF_STATIC_TOPIC, self._qos)
        return self._publish(drops)

    def withdraw(self, robot: str) -> None:
        """Publish everyone's static transforms without a robot's (it is no longer mirrored)."""
        if self._by_robot.pop(robot, None) is not None:
            self._publish(self._drops)

    def _publish(self, drops: DropCounter) -> bool:
        merged = [transform for each in self._by_robot.values() for transform in each]
        return publish_or_drop(self._publisher, self._tf_type(transforms=merged), drops)


__all__ = ['StaticTransforms']
