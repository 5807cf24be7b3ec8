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
"""Counted, rate-limited drops: bad input is dropped alone, counted, and logged sparingly."""

from __future__ import annotations

from collections import Counter
import logging
import threading
import time
from typing import Any, Dict

import rclpy


class DropCounter:
    """
    Counts drops by reason and logs each reason at most once per period, with its count.

    Any thread may drop; readers in other threads use :attr:`total` (an integer) or
    :meth:`snapshot` (a copy taken under the lock).
    """

    def __init__(self, logger: logging.Logger, what: str, period_s: float = 10.0) -> None:
        self._logger = logger
        self._what = what
        self._period_s = period_s
        self._lock = threading.Lock()
        self._by_reason: Counter = Counter()
        self.total = 0
        self._logged_at: Dict[str, float] = {}
        self._logged_count: Counter = Counter()

    def snapshot(self) -> Dict[str, int]:
        """Return the drops by reason (a copy)."""
        with self._lock:
            return dict(self._by_reason)

    def count(self, reason: str, count: int = 1) -> None:
        """Count drops that are reported elsewhere (not logged here)."""
        with self._lock:
            self._by_reason[reason] += count
            self.total += count

    def drop(self, reason: str, detail: str = '', level: int = logging.WARNING,
             count: int = 1) -> None:
        """Count drops; log them unless this reason was logged within the period."""
        with self._lock:
            self._by_reason[reason] += count
            self.total += count
            if not self._due(reason):
                return
            since = self._by_reason[reason] - self._logged_count[reason]
            self._logged_count[reason] = self._by_reason[reason]
        more = f' ({since} since the last report)' if since > 1 else ''
        self._logger.log(level, '%s: dropped %s%s: %s', self._what, reason, more, detail[:300])

    def _due(self, reason: str) -> bool:
        now = time.monotonic()
        last = self._logged_at.get(reason)
        if last is not None and now - last < self._period_s:
            return False
        self._logged_at[reason] = now
        return True


def publish_or_drop(publisher: Any, message: Any, drops: DropCounter) -> bool:
    """Publish; a failure is a counted drop, and is silent once ROS is shutting down."""
    try:
        publisher.publish(message)
        return True
    except Exception as exc:  # noqa: BLE001 - rclpy raises RCLError and friends
        if rclpy.ok():
            drops.drop('publish failed', str(exc))
        return False
