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

Built the way fleet.py builds mirrors: the capability (log_forwarder.py) with its spool
(log_spool.py), the stream its spec asks for, and the /rosout readers (rosout.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Coroutine, List

from diagnostic_msgs.msg import DiagnosticStatus

from .capability import open_stream
from .credentials import Token
from .diagnostics import forwarder_statuses
from .log_forwarder import LogForwarder
from .log_spool import Spool
from .params import BridgeConfig, ros_name
from .rosout import RosoutSubscriptions

_log = logging.getLogger(__name__)


class UpstreamLogs:
    """Forwards /rosout upstream; its coroutines run on the bridge's asyncio loop."""

    def __init__(self, node: Any, loop: asyncio.AbstractEventLoop, config: BridgeConfig,
                 base_url: str, token: Token) -> None:
        spool_dir = Path(config.spool_dir).expanduser() / ros_name(config.robot_id)
        # Never forward our own records: that would be a feedback loop.
        ignore = [node.get_logger().name, *config.log_ignore_nodes]
        self.spool = Spool(spool_dir, config.spool_max_bytes)
        self.forwarder = LogForwarder(loop, self.spool, config.log_min_level, ignore,
                                      config.log_ack_timeout_s)
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

    def statuses(self) -> List[DiagnosticStatus]:
        """Return the log forwarding status and its stream's (executor thread)."""
        return forwarder_statuses(self.forwarder, self.stream)

    async def stop(self) -> None:
        """Close the stream, then spool and sync what is in memory (asyncio loop)."""
        await self.stream.stop()
        await self.forwarder.flush()
        self.forwarder.stop()


__all__ = ['UpstreamLogs']
