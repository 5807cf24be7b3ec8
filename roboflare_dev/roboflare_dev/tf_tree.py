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
A TF tree in numpy: a short history of each frame's transform, and lookups along the tree.

Enough of tf2 for the tools that draw the fleet and for tests (tf2_ros is not on PyPI):
frames are looked up through their parents, each edge at the transform nearest in time to
the stamp asked for (the latest without one), so a scan is placed where the robot was.
As tf2 does, it tells the latest time a chain can be looked up at (the latest common
time) and whether a time lies within every moving edge's history (``covers``: tf2 would
interpolate, not extrapolate); edges from ``/tf_static`` hold at every time.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional, Set, Tuple

import numpy as np


def matrix(translation: Any, rotation: Any) -> np.ndarray:
    """Return the 4x4 homogeneous matrix of a ROS translation and quaternion."""
    x, y, z, w = rotation.x, rotation.y, rotation.z, rotation.w
    norm = x * x + y * y + z * z + w * w
    s = 2.0 / norm if norm else 0.0
    m = np.identity(4)
    m[:3, :3] = [[1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
                 [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
                 [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]]
    m[:3, 3] = translation.x, translation.y, translation.z
    return m


def yaw_of(m: np.ndarray) -> float:
    """Return the heading (rotation about z) of a homogeneous matrix."""
    return float(np.arctan2(m[1, 0], m[0, 0]))


def stamp_ns(stamp: Any) -> int:
    """Return a builtin_interfaces/Time as integer nanoseconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class TransformTree:
    """Each child frame's parent and its recent transforms (``TransformStamped`` semantics)."""

    def __init__(self, history: int = 64) -> None:
        self._parent: Dict[str, str] = {}
        self._history: Dict[str, Deque[Tuple[int, np.ndarray]]] = {}  # oldest first
        self._static: Set[str] = set()  # children whose edge holds at every time
        self._length = history

    def add(self, transforms: Iterable[Any], static: bool = False) -> None:
        """Take the transforms of a TFMessage (``/tf``, or ``/tf_static`` with ``static``)."""
        for transform in transforms:
            if static:
                self._static.add(transform.child_frame_id)
            else:
                self._static.discard(transform.child_frame_id)
            child = transform.child_frame_id
            if self._parent.get(child) != transform.header.frame_id:  # new, or re-parented
                self._parent[child] = transform.header.frame_id
                self._history[child] = deque(maxlen=self._length)
            history = self._history[child]
            entry = (stamp_ns(transform.header.stamp),
                     matrix(transform.transform.translation, transform.transform.rotation))
            if history and entry[0] < history[-1][0]:
                history.clear()  # the clock stepped back: what came before is stale
            history.append(entry)

    def frames(self) -> List[str]:
        """Return every frame named, as a parent or as a child."""
        return sorted(set(self._parent) | set(self._parent.values()))

    def chain(self, frame: str) -> List[str]:
        """Return the frame and its ancestors up to its root (cycles are cut)."""
        chain = [frame]
        while chain[-1] in self._parent and len(chain) <= len(self._parent):
            chain.append(self._parent[chain[-1]])
        return chain

    def lookup(self, target: str, source: str,
               stamp: Optional[Any] = None) -> Optional[np.ndarray]:
        """Return the pose of ``source`` in ``target`` (None if they are not connected)."""
        up_from_source, up_from_target = self.chain(source), self.chain(target)
        common = next((f for f in up_from_source if f in up_from_target), None)
        if common is None:
            return None
        at = None if stamp is None else stamp_ns(stamp)
        return np.linalg.inv(self._to_ancestor(target, common, at)) @ \
            self._to_ancestor(source, common, at)

    def latest_common_time(self, target: str, source: str) -> Optional[int]:
        """Return the latest time (ns) the path can be looked up at; 0 if nothing moves."""
        edges = self._path(target, source)
        if edges is None:
            return None
        moving = [self._history[frame][-1][0] for frame in edges if frame not in self._static]
        return min(moving, default=0)

    def covers(self, target: str, source: str, at_ns: int) -> bool:
        """Whether every moving edge of the path has transforms on both sides of ``at_ns``."""
        edges = self._path(target, source)
        return edges is not None and all(
            self._history[frame][0][0] <= at_ns <= self._history[frame][-1][0]
            for frame in edges if frame not in self._static)

    def _path(self, target: str, source: str) -> Optional[List[str]]:
        """Return the child frames of the edges between two frames (None: not connected)."""
        up_from_source, up_from_target = self.chain(source), self.chain(target)
        common = next((f for f in up_from_source if f in up_from_target), None)
        if common is None:
            return None
        return (up_from_source[:up_from_source.index(common)]
                + up_from_target[:up_from_target.index(common)])

    def _to_ancestor(self, frame: str, ancestor: str, at: Optional[int]) -> np.ndarray:
        m = np.identity(4)
        while frame != ancestor:
            m = self._edge(frame, at) @ m
            frame = self._parent[frame]
        return m

    def _edge(self, frame: str, at: Optional[int]) -> np.ndarray:
        history = self._history[frame]
        if at is None or len(history) == 1:
            return history[-1][1]
        stamps = [entry[0] for entry in history]
        i = bisect.bisect_left(stamps, at)
        if i == len(stamps):
            return history[-1][1]
        if i > 0 and at - stamps[i - 1] <= stamps[i] - at:
            return history[i - 1][1]
        return history[i][1]


__all__ = ['TransformTree', 'matrix', 'stamp_ns', 'yaw_of']
