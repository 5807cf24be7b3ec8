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
from typing import Any, Callable, Dict, Iterable, List, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .streams import StreamClient

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
    return status(stream.name, level, message, values)


def robot_statuses(robot: Any, now: float) -> List[DiagnosticStatus]:
    """Return a RobotStreams' statuses: the robot itself, then each stream."""
    values: Dict[str, Any] = {'robot_id': robot.robot.id, 'name': robot.robot.name,
                              'namespace': robot.robot.namespace,
                              'frame_prefix': robot.robot.frame_prefix}
    if robot.topics is not None:
        topics = robot.topics
        values.update({'topics_subscribed': topics.stats.subscribed,
                       'topic_frames': topics.stats.frames,
                       'topic_messages_published': topics.stats.published,
                       'topic_drops': topics.drops.total})
        values.update({f'topic_drops.{reason}': count
                       for reason, count in dict(topics.drops.by_reason).items()})
    if robot.camera is not None:
        camera = robot.camera.stats
        fps, bytes_per_s = camera.rates(now)
        values.update({'camera_fps': fps, 'camera_bytes_per_s': bytes_per_s,
                       'camera_resolution': f'{camera.width}x{camera.height}',
                       'camera_frames': camera.frames, 'camera_published': camera.published,
                       'camera_decoded': camera.decoded,
                       'camera_decode_ms': camera.mean_decode_ms,
                       'camera_drops': robot.camera.drops.total})
        values.update({f'camera_drops.{reason}': count
                       for reason, count in dict(robot.camera.drops.by_reason).items()})
    for extra in robot.extra_stats():
        values.update(extra)
    streams = [stream_status(stream) for stream in robot.streams]
    level = max((s.level for s in streams), default=OK)
    message = 'all streams connected' if level == OK else 'some streams are not connected'
    return [status(f'robot {robot.robot.ros_name}', level, message, values)] + streams


def forwarder_statuses(forwarder: Any, stream: StreamClient,
                       now: float) -> List[DiagnosticStatus]:
    """Return the upstream log forwarder's status and its stream's (``now``: loop time)."""
    stats, spool = forwarder.stats, forwarder.spool
    level = OK if stream.stats.connected else WARN
    if spool.records:
        message = f'{spool.records} records waiting in the spool'
    else:
        message = 'all records acknowledged'
    if spool.error:
        level, message = ERROR, (f'spool cannot write ({spool.error}); {spool.held_bytes} '
                                 f'bytes held in memory, {spool.dropped_records} records '
                                 'dropped')
    if stream.stats.unauthorized:
        level = ERROR
    oldest = stats.oldest_unacked_since
    values = {'received': stats.received, 'filtered': stats.filtered,
              'replayed_skipped': stats.replayed_skipped,
              'duplicates_skipped': stats.duplicates_skipped, 'forwarded': stats.forwarded,
              'acked_batches': stats.acked_batches, 'acked_records': stats.acked_records,
              'rejected_records': stats.rejected_records, 'in_flight': stats.in_flight,
              'oldest_unacked_s': 0.0 if oldest is None else max(0.0, now - oldest),
              'resends': stats.resends, 'ack_timeouts': stats.ack_timeouts,
              'error_replies': stats.error_replies, 'spool_records': spool.records,
              'spool_bytes': spool.size, 'spool_held_bytes': spool.held_bytes,
              'spool_dropped_records': spool.dropped_records,
              'spool_write_failures': spool.write_failures, 'spool_error': spool.error,
              'drops': forwarder.drops.total}
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
