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
"""Downstream logs: each mirrored robot's ``logs/ws`` records on ``<namespace>/rosout``."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, Dict, List, Optional

from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log

from .capability import MirrorContext, RemoteRobot
from .demand import Demand, gated
from .robot_clock import RobotClock
from ..common.drops import DropCounter, publish_or_drop
from ..control.resources import parse_time
from ..transport.streams import Gate, StreamSpec
from ..transport.wire import (
    FrameError, LOG_STREAM_LIMITS, LOGS_STREAM, parse_json_object, parse_log_record,
)
from ..upstream.rosout import LEVEL_VALUES, rosout_qos

_log = logging.getLogger(__name__)


def log_message(record: Any, clock: Optional[RobotClock] = None,
                receipt_ns: int = 0) -> Log:
    """
    Return a contract log record (validated) as an rcl_interfaces/msg/Log.

    With a ``clock``, the record is a sample of the robot's clock and its stamp is rewritten
    as ``restamp`` asks; the text then ends with the robot's own time, which is kept so.
    """
    try:
        sec, nanosec = parse_time(record.ts)
    except ValueError:
        sec, nanosec = 0, 0
    text = record.msg
    if clock is not None:
        clock.received(receipt_ns, {'header': {'stamp': {'sec': sec, 'nanosec': nanosec}}})
        restamp = clock.hook()
        if restamp is not None and (sec, nanosec) != restamp(sec, nanosec):
            sec, nanosec = restamp(sec, nanosec)
            text = f'{text} [robot time {record.ts}]'
    return Log(stamp=Time(sec=sec, nanosec=nanosec), level=LEVEL_VALUES[record.level],
               name=record.logger, msg=text, file=record.file,
               function=record.function, line=record.line)


class LogMirror:
    """
    One robot's log records republished on <namespace>/rosout (a capability).

    Threads: frames arrive on the asyncio loop; diagnostics read two integers.
    """

    def __init__(self, robot_label: str, namespace: str, create_publisher: Any,
                 on_demand: bool = False, linger_s: float = 5.0,
                 on_watched: Callable[[], None] = lambda: None,
                 clock: Optional[RobotClock] = None) -> None:
        self.topic = namespace.rstrip('/') + '/rosout'
        self._clock = clock
        self.published = 0
        self.drops = DropCounter(_log, f'{robot_label} logs')
        # On demand the stream connects only while the topic has a subscriber.
        self._demand: Optional[Demand] = None
        self._gate: Optional[Gate] = None
        if on_demand:
            self._demand, self._gate = gated(linger_s, on_watched)
            create_publisher = functools.partial(self._demand.publisher, create_publisher)
        self._publisher = create_publisher(Log, self.topic, rosout_qos(100))

    def on_frame(self, frame: Any) -> None:
        try:
            obj = parse_json_object(frame)
            if 'type' in obj:
                return  # an ack or error for an upstream batch
            message = log_message(parse_log_record(obj), self._clock, time.time_ns())
        except FrameError as exc:
            self.drops.drop('malformed record', str(exc))
            return
        if publish_or_drop(self._publisher, message, self.drops):
            self.published += 1

    def stream_spec(self) -> StreamSpec:
        return StreamSpec(LOGS_STREAM, self.on_frame, options=dict(LOG_STREAM_LIMITS),
                          gate=self._gate)

    def activity(self) -> str:
        return 'logs on' if self._gate is None or self._gate.is_open else 'logs off'

    def watched(self) -> bool:
        return self._demand is not None and self._demand.wanted

    def diagnostic_values(self) -> Dict[str, Any]:
        return {'remote_logs_published': self.published, 'remote_logs_drops': self.drops.total}

    def warnings(self) -> List[str]:
        return []

    def publishers(self) -> List[Any]:
        return [self._publisher]

    def stop(self) -> None:
        if self._demand is not None:
            self._demand.stop()


def build(robot: RemoteRobot, context: MirrorContext) -> Optional[LogMirror]:
    """Return the mirror of a robot's logs, if remote logs are mirrored."""
    if not context.config.remote_logs:
        return None
    config = context.config
    return LogMirror(robot.ros_name, robot.namespace, context.create_publisher,
                     config.mirror_on_demand, config.on_demand_linger_s, context.on_watched,
                     context.clock)


__all__ = ['build', 'LogMirror', 'log_message']
