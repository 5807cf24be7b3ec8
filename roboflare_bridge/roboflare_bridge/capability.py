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
The one shape every capability of the bridge has.

A capability (topic mirror, camera, remote logs, upstream log forwarding) handles the
frames of one WebSocket stream of one robot. It says which stream it needs and how
(:class:`StreamSpec`); it reports :meth:`Capability.diagnostic_values` (called from the
rclpy executor's thread: O(1) counters and snapshots only); and it releases what it holds
in :meth:`Capability.stop`. Its frame handlers run on the asyncio loop. fleet.py (mirrors)
and upstream.py (log forwarding) build capabilities and run their streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol

from .credentials import Token
from .streams import Frame, StreamClient


@dataclass(frozen=True)
class StreamSpec:
    """The stream a capability needs, its handlers, and StreamClient options (limits)."""

    stream: str
    on_frame: Callable[[Frame], None]
    on_connect: Optional[Callable[[StreamClient], Awaitable[None]]] = None
    on_disconnect: Optional[Callable[[StreamClient], None]] = None
    options: Dict[str, Any] = field(default_factory=dict)


class Capability(Protocol):
    """One thing the bridge does with one robot's stream."""

    def stream_spec(self) -> StreamSpec:
        """Return the stream this capability needs (asked once, before it connects)."""

    def diagnostic_values(self) -> Dict[str, Any]:
        """Return its counters for /diagnostics (executor thread: no iteration of live state)."""

    def warnings(self) -> List[str]:
        """Return what a user must act on (the robot's status is WARN while there are any)."""

    def publishers(self) -> List[Any]:
        """Return the publishers it created: destroyed when its robot stops being mirrored."""

    def stop(self) -> None:
        """Release what it holds (asyncio loop, after its stream stopped)."""


def open_stream(spec: StreamSpec, base_url: str, robot_id: str, token: Token,
                ping_interval_s: float, ping_timeout_s: float,
                compression: bool = True) -> StreamClient:
    """Return the (not yet running) StreamClient that a capability's spec asks for."""
    options = {'compression': compression, **spec.options}  # a capability's choice wins
    return StreamClient(base_url, robot_id, spec.stream, token, on_frame=spec.on_frame,
                        on_connect=spec.on_connect, on_disconnect=spec.on_disconnect,
                        ping_interval_s=ping_interval_s, ping_timeout_s=ping_timeout_s,
                        **options)


__all__ = ['Capability', 'StreamSpec', 'open_stream']
