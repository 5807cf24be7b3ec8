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
Health on ``/diagnostics``: one status per stream and per robot, and the control plane's.

Values are counters and states, never secrets: the token is not in a URL shown here, and
last errors were scrubbed where they were recorded.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..control.contract_check import Report
from ..control.resources import FORBIDDEN, OPENAPI_PATH, ROBOT_OFFLINE, UNAUTHORIZED
from ..fleet.fleet import FleetStatus, RobotStreams
from ..mirror.robot_clock import RobotClock
from ..parameters import BridgeConfig
from ..transport.streams import StreamClient
from ..upstream.upstream_logs import UpstreamStatus

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
HARDWARE_ID = 'roboflare'
_log = logging.getLogger(__name__)


def status(name: str, level: bytes, message: str, values: Dict[str, Any]) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=f'roboflare_bridge: {name}', message=message,
                            hardware_id=HARDWARE_ID,
                            values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def stream_status(stream: StreamClient) -> DiagnosticStatus:
    stats = stream.stats
    if stats.unauthorized:
        level, message = ERROR, 'token refused; not retrying'
    elif stats.idle:
        level, message = OK, 'not connected: nothing local subscribes (on demand)'
    elif stats.connected:
        level, message = OK, 'connected'
    elif stats.connects == 0:
        level, message = WARN, 'connecting'
    else:
        level, message = WARN, 'reconnecting'
    values = {'url': stream.url, 'connected': stats.connected, 'connects': stats.connects,
              'reconnects': stats.reconnects, 'frames_in': stats.frames_in,
              'frames_out': stats.frames_out, 'bytes_in': stats.bytes_in,
              'bytes_out': stats.bytes_out, 'errors': stats.errors, 'drops': stats.drops,
              'last_error': stats.last_error}
    values.update({f'refused.{bound}': count for bound, count in dict(stats.refused).items()})
    return status(stream.name, level, message, values)


class ReceiveRates:
    """Bytes per second received from the cloud, per robot: the change since the last call."""

    def __init__(self) -> None:
        self._last: Dict[str, Tuple[float, int]] = {}

    def rate(self, key: str, received: int, now: float) -> float:
        then, before = self._last.get(key, (now, received))
        self._last[key] = (now, received)
        return (received - before) / (now - then) if now > then else 0.0

    def forget_all_but(self, keys: Iterable[str]) -> None:
        """Drop the robots no longer mirrored (bounded by the fleet)."""
        kept = set(keys)
        self._last = {key: value for key, value in self._last.items() if key in kept}


def clock_warning(clock: RobotClock, warn_s: float) -> Optional[str]:
    """Say how far off a robot's clock is, if more than ``warn_s``, and what restamp does."""
    offset = clock.offset.offset_s
    if offset is None or abs(offset) <= warn_s:
        return None
    off = f'{abs(offset):.3f} s {"ahead of" if offset > 0 else "behind"} this machine'
    if clock.mode == 'none':
        return f'its clock is {off}: stamps as sent (restamp: offset or receipt compensates)'
    return f'its clock is {off}: stamps rewritten (restamp: {clock.mode})'


def robot_statuses(robot: RobotStreams, received_bytes_per_s: float = 0.0,
                   clock_warn_s: float = 0.5) -> List[DiagnosticStatus]:
    """Return a mirrored robot's statuses: the robot with its mirrors' values, streams."""
    offset = robot.clock.offset.offset_s
    values: Dict[str, Any] = {'robot_id': robot.robot.id, 'name': robot.robot.name,
                              'namespace': robot.robot.namespace,
                              'frame_prefix': robot.robot.frame_prefix,
                              'received_bytes_per_s': received_bytes_per_s,
                              'watched': any(mirror.watched() for mirror in robot.mirrors),
                              'clock_offset_s': 'unknown' if offset is None else offset,
                              'restamp': robot.clock.mode}
    for mirror in robot.mirrors:
        values.update(mirror.diagnostic_values())
    streams = [stream_status(stream) for stream in robot.streams]
    level = max((s.level for s in streams), default=OK)
    activity = ', '.join(mirror.activity() for mirror in robot.mirrors)
    message = (f'{activity}; {received_bytes_per_s / 1000:.1f} kB/s from the cloud'
               if level == OK else f'some streams are not connected; {activity}')
    warnings = [text for mirror in robot.mirrors for text in mirror.warnings()]
    clock = clock_warning(robot.clock, clock_warn_s)
    if clock is not None:
        warnings.append(clock)
    if warnings:
        level, message = max(level, WARN), '; '.join([message] + warnings)
    return [status(f'robot {robot.robot.ros_name}', level, message, values)] + streams


def contract_status(report: Optional[Report], base_url: str) -> DiagnosticStatus:
    """Return how the live /openapi.json compares with what the bridge uses (contract_check)."""
    values: Dict[str, Any] = {'spec': base_url.rstrip('/') + OPENAPI_PATH}
    if report is None:
        return status('contract', WARN, 'checking the API spec', values)
    values['compatible'] = report.compatible
    values.update({f'difference {i + 1}': difference.line()
                   for i, difference in enumerate(report.differences)})
    level = OK if not report.error and not report.differences else WARN
    return status('contract', level, report.summary(), values)


def fleet_statuses(fleet: FleetStatus, config: BridgeConfig, rates: ReceiveRates,
                   now: float) -> List[DiagnosticStatus]:
    """Return the selection's status, then one per robot: mirrored, offline or unmatched."""
    selected, mirrored, unmatched = fleet.selected, fleet.mirrored, fleet.unmatched
    received = {robot_id: rates.rate(robot_id, sum(s.stats.bytes_in for s in entry.streams), now)
                for robot_id, entry in mirrored.items()}
    rates.forget_all_but(mirrored)
    offline = {robot_id: robot for robot_id, robot in selected.items()
               if robot.status == ROBOT_OFFLINE}
    if fleet.poll_error:
        refused = fleet.poll_error_code in (UNAUTHORIZED, FORBIDDEN)
        level = ERROR if refused else WARN
        message = f"listing the org's robots failed: {fleet.poll_error}"
    elif not fleet.polls:
        level, message = WARN, "listing the org's robots"
    else:
        level = WARN if unmatched or offline else OK
        message = (f'{len(mirrored)} robots mirrored, {len(offline)} offline'
                   + (f', {len(unmatched)} robots entries match nothing' if unmatched else ''))
    statuses = [status('fleet', level, message, {
        'selected': len(selected), 'mirrored': len(mirrored) - len(offline),
        'offline': len(offline), 'removed': fleet.removed, 'polls': fleet.polls,
        'poll_interval_s': float(config.robots_poll_interval_s),
        'shard': f'{config.shard_index} of {config.shard_count}',
        'robots': ' '.join(config.robots), 'deny_robots': ' '.join(config.deny_robots),
        'received_bytes_per_s': sum(received.values()),
        'watched': sum(any(m.watched() for m in entry.mirrors) for entry in mirrored.values()),
        'on_demand': config.mirror_on_demand})]
    for unmatched_entry, reason in unmatched.items():
        statuses.append(status(f'robot {unmatched_entry}', WARN, f'not mirrored: {reason}',
                               {'entry': unmatched_entry}))
    for robot_id, entry in mirrored.items():
        robot = offline.get(robot_id)
        if robot is None:
            statuses += robot_statuses(entry, received[robot_id], config.clock_warn_s)
            continue
        seen = robot.last_seen_at[0]
        last_seen = (time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(seen)) if seen
                     else 'never')
        statuses.append(status(f'robot {entry.robot.ros_name}', WARN,
                               f'offline, last seen {last_seen}; streams wait for it',
                               {'robot_id': robot_id, 'name': robot.name,
                                'namespace': entry.robot.namespace, 'last_seen': last_seen}))
    return statuses


def upstream_statuses(upstream: UpstreamStatus) -> List[DiagnosticStatus]:
    """Return the upstream log forwarder's status and its stream's."""
    values, stream = upstream.values, upstream.stream
    level = OK if stream.stats.connected else WARN
    if values['spool_records']:
        message = f'{values["spool_records"]} records waiting in the spool'
    else:
        message = 'all records acknowledged'
    if values['spool_error']:
        level, message = ERROR, (f'spool cannot write ({values["spool_error"]}); '
                                 f'{values["spool_held_bytes"]} bytes held in memory, '
                                 f'{values["spool_dropped_records"]} records dropped')
    if stream.stats.unauthorized:
        level = ERROR
    return [status('log forwarding', level, message, values), stream_status(stream)]


class Diagnostics:
    """Publishes the bridge's statuses periodically."""

    def __init__(self, node: Any, period_s: float,
                 collect: Callable[[float], Iterable[DiagnosticStatus]]) -> None:
        self._node = node
        self._collect = collect
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._timer = node.create_timer(period_s, self.publish)
        self.last: Optional[DiagnosticArray] = None
        self.failures = 0

    def publish(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        try:
            array.status = list(self._collect(time.monotonic()))
        except Exception:  # noqa: B902 - a faulty status must not take the node down with it
            self.failures += 1
            _log.exception('collecting diagnostics failed (%d times); skipping this period',
                           self.failures)
            return
        self._publisher.publish(array)
        self.last = array

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._publisher)
