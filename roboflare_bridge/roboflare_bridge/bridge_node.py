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
The ``bridge`` node: wires configuration, the asyncio thread and each capability together.

Capabilities live in their own modules: the control plane (control_plane.py), mirrored
robots (mirror.py, camera.py), logs (logs.py) and health (diagnostics.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from .api_client import ApiClient
from .control_plane import ControlPlane
from .credentials import check_base_url, CredentialsError, resolve_credentials
from .fleet import Fleet, publisher_factory
from .loop_thread import AsyncioThread
from .params import BridgeConfig, declare_and_read, ParameterError

NODE_NAME = 'roboflare_bridge'


class StartupError(RuntimeError):
    """The bridge cannot start with this configuration; the message says why."""


class RosLogHandler(logging.Handler):
    """Send the Python ``logging`` records of the bridge's modules to the node's logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                self._logger.error(text)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(text)
            elif record.levelno >= logging.INFO:
                self._logger.info(text)
            else:
                self._logger.debug(text)
        except Exception:  # noqa: BLE001 - logging must never take the node down
            self.handleError(record)


class RoboflareBridge(Node):
    """The Roboflare bridge node."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self.config: BridgeConfig = declare_and_read(self)
            credentials = resolve_credentials(self.config.base_url, self.config.token_file)
            check_base_url(credentials.base_url, self.config.allow_insecure_http)
        except (ParameterError, CredentialsError) as exc:
            raise StartupError(str(exc)) from None
        self._log_handler = RosLogHandler(self)
        self._log_handler.setFormatter(logging.Formatter('%(name)s: %(message)s'))
        package_logger = logging.getLogger('roboflare_bridge')
        package_logger.addHandler(self._log_handler)
        package_logger.setLevel(logging.INFO)
        package_logger.propagate = False

        self.loop = AsyncioThread()
        self.api = ApiClient(credentials, request_timeout_s=self.config.request_timeout_s)
        self.control_plane = ControlPlane(self, self.loop, self.api,
                                          self.config.request_timeout_s,
                                          self.config.deploy_poll_interval_s)
        self.fleet = Fleet(self.config, self.api, credentials.token, publisher_factory(self))
        self._fleet_run = self.loop.submit(self.fleet.run())
        self.get_logger().info(
            f'bridging {credentials.base_url} ({credentials.token.kind} token); '
            f'robots: {", ".join(self.config.robots) or "none"}')

    def shutdown(self) -> None:
        """Stop the asyncio side: close streams and the HTTP client, bounded in time."""
        self.control_plane.destroy()
        self.loop.stop(self._shutdown_async, timeout=1.5)
        logging.getLogger('roboflare_bridge').removeHandler(self._log_handler)

    async def _shutdown_async(self) -> None:
        await self.fleet.stop()
        await self.api.aclose()


def main(args: Optional[List[str]] = None) -> None:
    """Run the bridge until Ctrl-C or shutdown (``ros2 run roboflare_bridge bridge``)."""
    rclpy.init(args=args)
    node: Optional[RoboflareBridge] = None
    exit_code = 0
    try:
        node = RoboflareBridge()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
        exit_code = 1
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    if exit_code:
        sys.exit(exit_code)


if __name__ == '__main__':
    main()
