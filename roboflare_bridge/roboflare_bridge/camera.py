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
received bytes published as they are (the message serialised around them by cdr.py).
``<ns>/camera/image_raw`` (Image, ``bgr8``) is decoded only while it has subscribers, in
one decode thread shared by all robots that keeps only the newest frame of each robot:
when decoding falls behind, stale frames are dropped and counted, and memory holds at most
one pending frame per robot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from builtin_interfaces.msg import Time
import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image

from .capability import StreamSpec
from .cdr import CompressedImageWriter
from .counters import DropCounter, publish_or_drop
from .frames import CAMERA_STREAM, check_jpeg, FrameError
from .rclpy_compat import fast_paths, set_bytes
from .topic_qos import IMAGE, qos_profile

_log = logging.getLogger(__name__)

IMAGE_QOS = qos_profile(IMAGE)
Stamp = Tuple[int, int]  # (sec, nanosec)


# -- decoding ------------------------------------------------------------------------------

class JpegDecoder:
    """
    JPEG -> ``bgr8`` Image, with the best decoder this machine has.

    Decoders, fastest first: simplejpeg (libjpeg-turbo, wheels), OpenCV's imdecode (libjpeg-
    turbo on Ubuntu's python3-opencv). The Image is built with ROS 2's cv_bridge where it is
    installed and passes a self-test (the PyPI cv-bridge is a ROS 1 port that fails on
    NumPy 2), otherwise directly, the same way cv_bridge does.
    """

    def __init__(self) -> None:
        self.name, self._decode = _pick_decoder()
        self._bridge = _working_cv_bridge()
        self.uses_cv_bridge = self._bridge is not None

    def decode(self, jpeg: bytes) -> np.ndarray:
        """Return the image as an HxWx3 uint8 BGR array; raise FrameError if corrupt."""
        try:
            image = self._decode(jpeg)
        except Exception as exc:  # noqa: BLE001 - each decoder has its own error type
            raise FrameError(f'JPEG does not decode: {str(exc)[:100]}') from None
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            raise FrameError('JPEG does not decode to a 3-channel image')
        return image

    def to_message(self, image: np.ndarray) -> Image:
        if self._bridge is not None:
            return self._bridge.cv2_to_imgmsg(image, encoding='bgr8')
        return bgr8_message(image)


def jpeg_size(jpeg: bytes) -> Tuple[int, int]:
    """Return (width, height) from a JPEG's frame header, or (0, 0) if there is none."""
    i = 2
    while i + 9 < len(jpeg):
        if jpeg[i] != 0xFF:
            return 0, 0
        marker = jpeg[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height = int.from_bytes(jpeg[i + 5:i + 7], 'big')
            return int.from_bytes(jpeg[i + 7:i + 9], 'big'), height
        i += 2 + int.from_bytes(jpeg[i + 2:i + 4], 'big')
    return 0, 0


def bgr8_message(image: np.ndarray) -> Image:
    """Return a bgr8 Image holding ``image`` (HxWx3 uint8), as cv_bridge would."""
    height, width = image.shape[:2]
    message = Image(height=height, width=width, encoding='bgr8', is_bigendian=0,
                    step=width * 3)
    set_bytes(message, 'data', np.ascontiguousarray(image).tobytes())
    return message


def _pick_decoder() -> Tuple[str, Callable[[bytes], np.ndarray]]:
    try:
        import simplejpeg
        return 'simplejpeg', lambda data: simplejpeg.decode_jpeg(data, colorspace='BGR')
    except ImportError:
        pass
    try:
        import cv2
        return 'opencv', lambda data: cv2.imdecode(np.frombuffer(data, np.uint8),
                                                   cv2.IMREAD_COLOR)
    except ImportError:
        raise ImportError('no JPEG decoder: install python3-opencv or simplejpeg') from None


def _working_cv_bridge() -> Any:
    try:
        from cv_bridge import CvBridge
        bridge = CvBridge()
        probe = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        message = bridge.cv2_to_imgmsg(probe, encoding='bgr8')
        if (message.height, message.width, message.encoding) != (2, 3, 'bgr8') or \
                bytes(message.data) != probe.tobytes():
            raise ValueError('wrong conversion')
        return bridge
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use it
        if not isinstance(exc, ImportError):
            _log.info('cv_bridge is installed but fails its self-test (%s); using the '
                      'built-in bgr8 conversion', exc)
        return None


@dataclass
class _Pending:
    jpeg: bytes
    stamp: Stamp
    frame_id: str
    publish: Callable[[Image], None]
    on_done: Callable[[float], None]  # decode seconds, or -1 for an undecodable frame


class DecodeWorker:
    """One thread decoding the newest pending frame of each camera, in arrival order."""

    def __init__(self, decoder: Optional[JpegDecoder] = None) -> None:
        self.decoder = decoder or JpegDecoder()
        self._pending: Dict[str, _Pending] = {}
        self._order: Deque[str] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name='roboflare-decode', daemon=True)
        self._thread.start()

    def submit(self, camera: str, job: _Pending) -> bool:
        """Queue a frame; return False if it replaced an undecoded one (a counted drop)."""
        with self._wake:
            replaced = camera in self._pending
            self._pending[camera] = job
            if not replaced:
                self._order.append(camera)
            self._wake.notify()
        return not replaced

    def stop(self, timeout: float = 2.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._order and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job = self._pending.pop(self._order.popleft())
            started = time.perf_counter()
            try:
                message = self.decoder.to_message(self.decoder.decode(job.jpeg))
            except FrameError as exc:
                job.on_done(-1.0)
                _log.debug('decode failed: %s', exc)
                continue
            message.header.stamp.sec, message.header.stamp.nanosec = job.stamp
            message.header.frame_id = job.frame_id
            job.publish(message)
            job.on_done(time.perf_counter() - started)


# -- one robot's camera --------------------------------------------------------------------

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
    clock = node.get_clock()
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
                 max_frame_bytes: int) -> None:
        base = namespace.rstrip('/') + '/camera/image_raw'
        self.frame_id = frame_id
        self.stats = CameraStats()
        self.drops = DropCounter(_log, f'{robot_label} camera')
        self._label = robot_label
        self._now = now
        self._worker = worker
        self._max_frame_bytes = max_frame_bytes
        self._compressed = create_publisher(CompressedImage, base + '/compressed', IMAGE_QOS)
        self._writer = (CompressedImageWriter(frame_id, 'jpeg') if fast_paths().cdr_publish
                        else None)
        self._raw = create_publisher(Image, base, IMAGE_QOS) if worker is not None else None

    def stream_spec(self) -> StreamSpec:
        # JPEGs do not compress.
        return StreamSpec(CAMERA_STREAM, self.on_frame, options={
            'compression': False, 'max_frame_bytes': self._max_frame_bytes,
            'frame_limit_name': 'camera_max_frame_bytes'})

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
        pass  # the shared DecodeWorker is stopped by the fleet

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
        if self._raw is not None and self._raw.get_subscription_count() > 0:
            accepted = self._worker.submit(self._label, _Pending(
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
