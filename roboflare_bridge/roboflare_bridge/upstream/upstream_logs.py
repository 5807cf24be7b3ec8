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
Upstream: this machine's ``/rosout`` forwarded to the control plane as robot ``robot_id``.

Built as the fleet builds a robot's mirrors: the stream's consumer (forwarder.py) with its
spool (spool.py), the stream its spec asks for, and the /rosout readers (rosout.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Coroutine, Dict, List

from .forwarder import LogForwarder
from .rosout import RosoutSubscriptions
from .spool import Spool
from ..parameters import BridgeConfig, ros_name
from ..transport.credentials import Token
from ..transport.streams import open_stream, StreamClient

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamStatus:
    """Log forwarding as diagnostics show it."""

    values: Dict[str, Any]  # the forwarder's counters (LogForwarder.diagnostic_values)
    stream: StreamClient  # its stream, whose stats diagnostics read


class UpstreamLogs:
    """Forwards /rosout upstream; its coroutines run on the bridge's asyncio loop."""

    def __init__(self, node: Any, loop: asyncio.AbstractEventLoop, config: BridgeConfig,
                 base_url: str, token: Token) -> None:
        spool_dir = Path(config.spool_dir).expanduser() / ros_name(config.robot_id)
        # Never forward our own records: that would be a feedback loop.
        ignore = [node.get_logger().name, *config.log_ignore_nodes]
        self.spool = Spool(spool_dir, config.spool_max_bytes)
        self.forwarder = LogForwarder(loop, self.spool, config.log_min_level, ignore,
                                      config.log_ack_timeout_s, config.log_collapse_window_s,
                                      config.log_max_rate_per_node)
        self.stream = open_stream(self.forwarder.stream_spec(), base_url, config.robot_id,
                                  token, config.stream_ping_interval_s,
                                  config.stream_ping_timeout_s,
                                  config.stream_compression)
        self.subscriptions = RosoutSubscriptions(node, self.forwarder)
        error = f'; {self.spool.error}' if self.spool.error else ''
        _log.info('forwarding /rosout at or above %s as robot %s; spool %s (%d records '
                  'waiting%s)', config.log_min_level, config.robot_id, spool_dir,
                  self.spool.records, error)

    def coroutines(self) -> List[Coroutine[Any, Any, None]]:
        """Return what runs until shutdown: the stream, spool syncs, resends."""
        return [self.stream.run(), self.forwarder.run_sync(), self.forwarder.run_resends()]

    def status(self) -> UpstreamStatus:
        """Return the forwarder's counters and its stream, for diagnostics (executor thread)."""
        return UpstreamStatus(self.forwarder.diagnostic_values(), self.stream)

    async def stop(self) -> None:
        """Close the stream, then spool and sync what is in memory (asyncio loop)."""
        await self.stream.stop()
        await self.forwarder.flush()
        self.forwarder.stop()


__all__ = ['UpstreamLogs', 'UpstreamStatus']
