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
Camera mirroring: a robot's ``camera/ws`` JPEG frames as image_transport-style topics.

``<ns>/camera/image_raw/compressed`` (CompressedImage, ``jpeg``) gets every frame, the
received bytes published as they are (the message serialised around them by cdr_writer.py).
``<ns>/camera/image_raw`` (Image, ``bgr8``) is decoded only while it has subscribers, in
one decode thread shared by all robots that keeps only the newest frame of each robot:
when decoding falls behind, stale frames are dropped and counted, and memory holds at most
one pending frame per robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
import logging
import time
from typing import Any, Callable, cast, Dict, List, Optional, Tuple

from builtin_interfaces.msg import Time
from rclpy.clock import ROSClock
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image

from .capability import MirrorContext, RemoteRobot
from .demand import Demand, gated
from .jpeg_decoding import DecodeWorker, jpeg_size, PendingFrame
from .topic_qos import IMAGE, qos_profile
from ..codec.cdr_writer import CompressedImageWriter
from ..codec.rclpy_fast_paths import fast_paths, set_bytes
from ..common.drops import DropCounter, publish_or_drop
from ..transport.streams import Gate, StreamSpec
from ..transport.wire import CAMERA_STREAM, check_jpeg, FrameError

_log = logging.getLogger(__name__)

IMAGE_QOS = qos_profile(IMAGE)
Stamp = Tuple[int, int]  # (sec, nanosec)


def receipt_clock(node: Node) -> Callable[[], Stamp]:
    """
    Return a reader of a node's (ROS time) clock as (sec, nanosec), to stamp each frame.

    ``Clock.now().to_msg()`` took 7 % of a passed-through frame's CPU (py-spy), and asking
    the clock whether ROS time is active 1.5 us of a frame's 7. While the clock follows the
    system's (no simulated /clock), ``time.time_ns()`` is the same reading (CLOCK_REALTIME,
    as rcl's). Whether it does changes only with ``use_sim_time``, which the node's
    TimeSource applies while a set is validated; the reader asks the clock again after every
    set of it. One reader per node: it registers a callback.
    """
    clock = cast(ROSClock, node.get_clock())  # a node's clock is ROS time
    ros_time = clock.ros_time_is_active

    def follow_use_sim_time(parameters: List[Parameter]) -> None:
        nonlocal ros_time
        if any(parameter.name == 'use_sim_time' for parameter in parameters):
            ros_time = clock.ros_time_is_active

    node.add_post_set_parameters_callback(follow_use_sim_time)

    def now() -> Stamp:
        if ros_time:
            return clock.now().seconds_nanoseconds()
        return divmod(time.time_ns(), 1_000_000_000)
    return now


@dataclass
class CameraStats:
    """
    Counters of one camera, for diagnostics.

    The asyncio thread writes the counters; diagnostics read them from the executor's
    thread. Rates come from the reader's own previous sample, so the two threads share
    nothing but integers (a shared window of frames was iterated while it was appended to).
    """

    frames: int = 0
    bytes: int = 0  # noqa: A003 - a counter's natural name
    published: int = 0
    decoded: int = 0
    decode_failures: int = 0
    decode_s_total: float = 0.0
    width: int = 0
    height: int = 0
    _rate_sample: Tuple[float, int, int] = field(
        default_factory=lambda: (time.monotonic(), 0, 0), repr=False)

    def record(self, size: int) -> None:
        self.frames += 1
        self.bytes += size

    def rates(self, now: float) -> Tuple[float, float]:
        """Return (frames/s, bytes/s) since the previous call; one reader only."""
        then, frames, size = self._rate_sample
        self._rate_sample = (now, self.frames, self.bytes)
        if now - then <= 0:
            return 0.0, 0.0
        return (self.frames - frames) / (now - then), (self.bytes - size) / (now - then)

    @property
    def mean_decode_ms(self) -> float:
        return 1000 * self.decode_s_total / self.decoded if self.decoded else 0.0


class CameraMirror:
    """
    Publishes one robot's camera frames as compressed and (on demand) raw images.

    Threads: frames arrive on the asyncio loop; decoded images are published from the
    DecodeWorker's thread; the executor's thread calls only :meth:`diagnostic_values`.
    """

    def __init__(self, robot_label: str, namespace: str, frame_id: str,
                 create_publisher: Callable[[type, str, QoSProfile], Any],
                 now: Callable[[], Stamp], worker: Optional[DecodeWorker],
                 max_frame_bytes: int, on_demand: bool = False, linger_s: float = 5.0,
                 on_watched: Callable[[], None] = lambda: None) -> None:
        base = namespace.rstrip('/') + '/camera/image_raw'
        self.frame_id = frame_id
        self.stats = CameraStats()
        self.drops = DropCounter(_log, f'{robot_label} camera')
        self._label = robot_label
        self._now = now
        self._worker = worker
        self._max_frame_bytes = max_frame_bytes
        # On demand the stream connects only while either image topic has a subscriber.
        self._demand: Optional[Demand] = None
        self._gate: Optional[Gate] = None
        if on_demand:
            self._demand, self._gate = gated(linger_s, on_watched)
            create_publisher = functools.partial(self._demand.publisher, create_publisher)
        self._compressed = create_publisher(CompressedImage, base + '/compressed', IMAGE_QOS)
        self._writer = (CompressedImageWriter(frame_id, 'jpeg') if fast_paths().cdr_publish
                        else None)
        self._raw = create_publisher(Image, base, IMAGE_QOS) if worker is not None else None

    def stream_spec(self) -> StreamSpec:
        # JPEGs do not compress.
        return StreamSpec(CAMERA_STREAM, self.on_frame, gate=self._gate, options={
            'compression': False, 'max_frame_bytes': self._max_frame_bytes,
            'frame_limit_name': 'camera_max_frame_bytes'})

    def activity(self) -> str:
        return 'camera on' if self._gate is None or self._gate.is_open else 'camera off'

    def watched(self) -> bool:
        return self._demand is not None and self._demand.wanted

    def diagnostic_values(self) -> Dict[str, Any]:
        stats = self.stats
        fps, bytes_per_s = stats.rates(time.monotonic())
        values: Dict[str, Any] = {
            'camera_fps': fps, 'camera_bytes_per_s': bytes_per_s,
            'camera_resolution': f'{stats.width}x{stats.height}', 'camera_frames': stats.frames,
            'camera_published': stats.published, 'camera_decoded': stats.decoded,
            'camera_decode_ms': stats.mean_decode_ms, 'camera_drops': self.drops.total}
        values.update({f'camera_drops.{reason}': count
                       for reason, count in self.drops.snapshot().items()})
        return values

    def warnings(self) -> List[str]:
        return []  # a bad or oversized frame is dropped alone: counted, not a user's task

    def publishers(self) -> List[Any]:
        return [p for p in (self._compressed, self._raw) if p is not None]

    def stop(self) -> None:
        if self._demand is not None:  # the shared DecodeWorker is stopped by the fleet
            self._demand.stop()

    def on_frame(self, frame: Any) -> None:
        if isinstance(frame, str):
            return  # the contract: text frames on camera/ws are ignored
        stamp = self._now()
        try:
            check_jpeg(frame, self._max_frame_bytes)
        except FrameError as exc:
            self.drops.drop('bad frame', str(exc))
            return
        self.stats.record(len(frame))
        if self.stats.frames % 30 == 1:  # the header is enough: no decode
            self.stats.width, self.stats.height = jpeg_size(frame)
        if self._writer is not None:  # serialised around the socket's bytes
            message: Any = self._writer.serialise(stamp[0], stamp[1], frame)
        else:
            message = CompressedImage(format='jpeg')
            message.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
            message.header.frame_id = self.frame_id
            set_bytes(message, 'data', frame)  # bytes from the socket, straight to rclpy
        if publish_or_drop(self._compressed, message, self.drops):
            self.stats.published += 1
        worker = self._worker
        if worker is not None and self._raw is not None and (
                self._raw.get_subscription_count() > 0):
            accepted = worker.submit(self._label, PendingFrame(
                frame, stamp, self.frame_id, self._publish_raw, self._decoded))
            if not accepted:
                self.drops.drop('stale frame', 'decoding fell behind; kept the newest frame',
                                level=logging.DEBUG)

    def _publish_raw(self, image: Image) -> None:
        publish_or_drop(self._raw, image, self.drops)

    def _decoded(self, seconds: float) -> None:
        # Runs in the decode thread; plain counter updates are safe under the GIL.
        if seconds < 0:
            self.stats.decode_failures += 1
            self.drops.count('undecodable')
        else:
            self.stats.decoded += 1
            self.stats.decode_s_total += seconds


def build(robot: RemoteRobot, context: MirrorContext) -> Optional[CameraMirror]:
    """Return the mirror of a robot's camera, if cameras are mirrored."""
    config = context.config
    if not config.camera:
        return None
    return CameraMirror(robot.ros_name, robot.namespace,
                        robot.frame_prefix + config.camera_frame_id, context.create_publisher,
                        context.camera_clock, context.decode_worker if config.decode_images
                        else None, config.camera_max_frame_bytes, config.mirror_on_demand,
                        config.on_demand_linger_s, context.on_watched)
