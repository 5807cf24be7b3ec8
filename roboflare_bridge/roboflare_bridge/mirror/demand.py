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
Local demand: whether anything subscribes to a mirror's publishers, so that it streams.

A :class:`Demand` watches one or more local publishers (a topic's; a camera's two) and
calls back when they go from no subscriber to some (at once) and from some to none (after
``linger_s`` with nobody back, so that rviz toggling a display does not thrash the robot).
Any subscription counts, whatever its QoS: the publisher's matched count says.

It learns of subscribers from the publishers' matched events where rclpy offers them
(Jazzy and later), from a cheap poll of the counts where it does not. Events arrive on the
executor's thread and are handed to the asyncio loop, which alone changes the demand.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable, List, Optional, Tuple

from rclpy.event_handler import PublisherEventCallbacks
from rclpy.qos import QoSProfile

from .topic_qos import PublisherFactory
from ..transport.streams import Gate

POLL_S = 0.25  # where rclpy has no matched events: how often the counts are read
MATCHED_EVENTS = 'matched' in inspect.signature(PublisherEventCallbacks).parameters


class Demand:
    """Whether a set of local publishers has subscribers; :attr:`wanted` lingers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, linger_s: float,
                 on_change: Callable[[bool], None]) -> None:
        self.wanted = False
        self._loop = loop
        self._linger_s = linger_s
        self._on_change = on_change
        self._publishers: List[Any] = []
        self._lapse: Optional[asyncio.TimerHandle] = None
        self._poll: Optional[asyncio.TimerHandle] = None
        self._stopped = False

    def publisher(self, create_publisher: PublisherFactory, cls: type, topic: str,
                  qos: QoSProfile) -> Any:
        """Create a publisher whose subscribers this demand counts."""
        if MATCHED_EVENTS:
            events = PublisherEventCallbacks(matched=self._matched, use_default_callbacks=False)
            publisher = create_publisher(cls, topic, qos, event_callbacks=events)
        else:
            publisher = create_publisher(cls, topic, qos)
            if self._poll is None:
                self._poll = self._loop.call_later(POLL_S, self._polled)
        self._publishers.append(publisher)
        self._loop.call_soon(self.recount)  # a subscriber may be there already
        return publisher

    def recount(self) -> None:
        """Read the subscription counts; start the demand, or its lingering end (loop)."""
        if self._stopped:
            return
        subscribed = any(publisher.get_subscription_count() > 0
                         for publisher in self._publishers)
        if subscribed:
            if self._lapse is not None:
                self._lapse.cancel()
                self._lapse = None
            if not self.wanted:
                self.wanted = True
                self._on_change(True)
        elif self.wanted and self._lapse is None:
            self._lapse = self._loop.call_later(self._linger_s, self._lapsed)

    def stop(self) -> None:
        """Stop watching (the publishers are about to be destroyed)."""
        self._stopped = True
        for timer in (self._lapse, self._poll):
            if timer is not None:
                timer.cancel()

    def _matched(self, _info: Any) -> None:
        # The executor's thread: the loop reads the counts.
        if not self._stopped:
            self._loop.call_soon_threadsafe(self.recount)

    def _lapsed(self) -> None:
        self._lapse = None
        if self._stopped or any(p.get_subscription_count() > 0 for p in self._publishers):
            return
        self.wanted = False
        self._on_change(False)

    def _polled(self) -> None:
        self.recount()
        if not self._stopped:
            self._poll = self._loop.call_later(POLL_S, self._polled)


def gated(linger_s: float, on_watched: Callable[[], None]) -> Tuple[Demand, Gate]:
    """Return a demand and the gate it opens: a whole stream wanted while it is (loop)."""
    gate = Gate()

    def changed(wanted: bool) -> None:
        gate.open_if(wanted)
        on_watched()
    return Demand(asyncio.get_running_loop(), linger_s, changed), gate


__all__ = ['Demand', 'gated', 'MATCHED_EVENTS']
