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

Each capability lives in its own layer: the control plane's services and actions
(control/control_plane.py), the mirrored robots (fleet/fleet.py builds every robot's
mirrors: mirror/topics.py, camera.py and remote_logs.py), the upstream logs
(upstream/upstream_logs.py) and health (diagnostics.py, beside this module).
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import signal
import sys
import threading
from typing import Any, Iterable, List, Optional

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from .diagnostics import (
    contract_status, Diagnostics, fleet_statuses, ReceiveRates, status, upstream_statuses,
)
from ..codec.rclpy_fast_paths import fast_paths
from ..common.asyncio_thread import AsyncioThread
from ..control.api_client import ApiClient
from ..control.control_plane import ControlPlane
from ..fleet.fleet import Fleet
from ..parameters import BridgeConfig, build_config, declare_and_read, ParameterError, PARAMETERS
from ..transport.credentials import check_base_url, CredentialsError, resolve_credentials
from ..transport.websocket import direct_frames
from ..upstream.upstream_logs import UpstreamLogs

NODE_NAME = 'roboflare_bridge'
_log = logging.getLogger(__name__)
LOG_LEVEL_CHECK_S = 1.0  # a level set at run time (~/set_logger_levels) reaches Python's loggers


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
        # The logger services let `ros2 service call ~/set_logger_levels` change its level.
        kwargs.setdefault('enable_logger_service', True)
        super().__init__(NODE_NAME, **kwargs)
        # First of all: every warning from here on (a token file others can read, ...)
        # goes through the node's logger, to /rosout and the log file.
        self._log_handler = RosLogHandler(self)
        self._log_handler.setFormatter(logging.Formatter('%(name)s: %(message)s'))
        package_logger = logging.getLogger('roboflare_bridge')
        package_logger.addHandler(self._log_handler)
        package_logger.propagate = False
        self._follow_log_level()
        try:
            self.config: BridgeConfig = declare_and_read(self)
            credentials = resolve_credentials(self.config.base_url, self.config.token_file)
            check_base_url(credentials.base_url, self.config.allow_insecure_http)
        except (ParameterError, CredentialsError) as exc:
            package_logger.removeHandler(self._log_handler)
            raise StartupError(str(exc)) from None
        fast_paths()  # rclpy's and the streams' fast paths: tested and logged once
        direct_frames()

        self.loop = AsyncioThread()
        self.api = ApiClient(credentials, request_timeout_s=self.config.request_timeout_s)
        self.control_plane: Optional[ControlPlane] = None
        if self.config.shard_index == 0:  # one set of services and actions for all shards
            self.control_plane = ControlPlane(self, self.loop, self.api,
                                              self.config.request_timeout_s,
                                              self.config.deploy_poll_interval_s)
        # The mirrors' publishers (hundreds in a fleet) live on a node of their own, spun by
        # an executor of their own (main): rclpy's executor walks every publisher's event
        # handler at each wake-up, so on this node every timer tick and service call would
        # pay for the whole fleet; there they cost only when a subscriber comes or goes.
        self.mirror_node = Node(f'{self.get_name()}_mirrors', namespace=self.get_namespace(),
                                context=self.context, use_global_arguments=False,
                                start_parameter_services=False, enable_rosout=False)
        self.fleet = Fleet(self, self.config, self.api, credentials.token, self.mirror_node)
        # The contract check first: list calls wait for it (does the API paginate?).
        self._running = [self.loop.submit(self.api.watch_contract()),
                         self.loop.submit(self.fleet.run()),
                         self.loop.submit(self.fleet.follow_clocks())]
        self.asyncio_tasks = 0
        self._running.append(self.loop.submit(self._count_tasks()))
        self.upstream: Optional[UpstreamLogs] = None
        if self.config.forward_logs:
            self.upstream = UpstreamLogs(self, self.loop.loop, self.config, self.api.base_url,
                                         credentials.token)
            self._running += [self.loop.submit(c) for c in self.upstream.coroutines()]
        self._receive_rates = ReceiveRates()
        self.diagnostics = Diagnostics(self, self.config.diagnostics_period_s,
                                       self._diagnostic_statuses)
        self._log_level_timer = self.create_timer(LOG_LEVEL_CHECK_S, self._follow_log_level)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        shard = (f'; shard {self.config.shard_index} of {self.config.shard_count}'
                 if self.config.shard_count > 1 else '')
        self.get_logger().info(
            f'bridging {credentials.base_url} ({credentials.token.kind} token); '
            f'robots: {", ".join(self.config.robots) or "none"}{shard}')

    def _follow_log_level(self) -> None:
        """Give the package's Python loggers the node logger's level (the same numbers)."""
        level = int(self.get_logger().get_effective_level())
        package_logger = logging.getLogger('roboflare_bridge')
        if package_logger.level != level:
            package_logger.setLevel(level)

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        """Apply ``ros2 param set`` on a run-time parameter (read-only ones never get here)."""
        # An empty string array is declared by its type alone: it has no value until set.
        values = {p.name: self.get_parameter_or(p.name).value for p in PARAMETERS}
        values.update({parameter.name: parameter.value for parameter in parameters})
        try:
            config = build_config(values)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a raise here would end the executor
            _log.exception('applying %s failed', ', '.join(p.name for p in parameters))
            return SetParametersResult(successful=False, reason=f'{type(exc).__name__}: {exc}')
        self.config = config
        self.loop.loop.call_soon_threadsafe(self.fleet.reconfigure, config)
        self.get_logger().info('parameters changed at run time: ' + ', '.join(
            f'{parameter.name}={parameter.value!r}' for parameter in parameters))
        return SetParametersResult(successful=True)

    async def _count_tasks(self) -> None:
        # Sampled on the loop itself: asyncio.all_tasks is not safe from another thread.
        while True:
            self.asyncio_tasks = len(asyncio.all_tasks())
            await asyncio.sleep(1.0)

    def _diagnostic_statuses(self, now: float) -> Iterable[DiagnosticStatus]:
        api, plane = self.api, self.control_plane
        if api.token_rejected:
            level, message = DiagnosticStatus.ERROR, 'token rejected (HTTP 401)'
        elif api.org_id:
            level, message = DiagnosticStatus.OK, f'org {api.org_id}'
        else:
            level, message = DiagnosticStatus.WARN, 'org not yet known'
        yield status('control plane', level, message, {
            'base_url': api.base_url, 'org_id': api.org_id, 'requests': api.requests_sent,
            'retries': api.retries, 'responses_refused': api.responses_refused,
            'services': plane is not None,
            'service_calls': plane.calls if plane else 0,
            'service_failures': plane.failures if plane else 0,
            'threads': threading.active_count(), 'asyncio_tasks': self.asyncio_tasks,
            'gc_frozen_objects': gc.get_freeze_count()})
        yield contract_status(api.contract, api.base_url)
        yield from fleet_statuses(self.fleet.status(), self.config, self._receive_rates, now)
        if self.upstream is not None:
            yield from upstream_statuses(self.upstream.status())

    def shutdown(self) -> None:
        """Stop the asyncio side: close streams and the HTTP client, bounded in time."""
        self.diagnostics.destroy()
        if self.control_plane is not None:
            self.control_plane.destroy()
        self.loop.stop(self._shutdown_async, timeout=1.5)
        logging.getLogger('roboflare_bridge').removeHandler(self._log_handler)

    async def _shutdown_async(self) -> None:
        if self.upstream is not None:
            await self.upstream.stop()  # what is in memory goes to the spool
        await self.fleet.stop()
        await self.api.aclose()


def main(args: Optional[List[str]] = None) -> None:
    """
    Run the bridge until SIGINT or SIGTERM (``ros2 run roboflare_bridge bridge``).

    The bridge handles the signals itself instead of rclpy, so that it can stop its streams
    and flush the log spool while the ROS context is still valid, and only then shut ROS
    down: the executors spin in threads of their own, the main thread waits for a signal.
    """
    # First: a stop requested while ROS initialises is kept, not lost (or ignored, when the
    # bridge was started with SIGINT ignored, as background jobs of scripts are). The handler
    # takes no lock: it runs in the main thread, possibly inside stop.wait() below, which
    # holds the Event's lock at moments; stop.set() there would deadlock (seen in CI).
    signalled: List[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: signalled.append(received))
    stop = threading.Event()  # set by the executor's thread when it ends
    dump_stacks_on(signal.SIGUSR1)  # `kill -USR1 <pid>`: where a hung bridge waits
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node: Optional[RoboflareBridge] = None
    try:
        node = RoboflareBridge()
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
        rclpy.try_shutdown()
        sys.exit(1)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    mirror_executor = SingleThreadedExecutor()
    mirror_executor.add_node(node.mirror_node)
    # What start-up built (rclpy, the message types, the node) lives as long as the process.
    # Frozen, it is no longer walked by the collector's older-generation passes, which the
    # messages in flight trigger: 5 % of the bridge's CPU when mirroring flat out, 1 % after.
    gc.freeze()
    spinners = [threading.Thread(target=_spin, args=(executor, stop), name='rclpy-executor'),
                threading.Thread(target=_spin, args=(mirror_executor, stop),
                                 name='rclpy-mirrors')]
    for spinner in spinners:
        spinner.start()
    try:
        while not signalled and not stop.wait(0.5):
            pass
    except KeyboardInterrupt:  # a second Ctrl-C while waiting
        pass
    finally:
        # The executor stops first: destroying services and timers while it waits on them
        # races its wait set (ros2/rclpy#255), and the spool flush then reads /rosout alone.
        for stopping in (executor, mirror_executor):
            stopping.shutdown(timeout_sec=1.0)
        for spinner in spinners:
            spinner.join(2.0)
        node.shutdown()
        node.mirror_node.destroy_node()
        node.destroy_node()
        rclpy.try_shutdown()


def dump_stacks_on(signum: int) -> None:
    """
    Print every thread's stack to stderr on ``signum``, and keep running.

    The main thread dumps, holding the GIL meanwhile, so the other threads' frames hold
    still: faulthandler.register's own handler reads them while they run and crashes the
    process now and then (cpython#116008; test_faults). A signal another thread takes is
    handled when the main thread's wait next wakes (main() waits 0.5 s at a time).
    """
    signal.signal(signum, lambda _signum, _frame: faulthandler.dump_traceback(all_threads=True))


def _spin(executor: SingleThreadedExecutor, stop: threading.Event) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass  # the context was shut down from elsewhere
    finally:
        stop.set()


if __name__ == '__main__':
    main()
