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
Camera frames decoded: JPEG -> ``bgr8`` Image, in one thread shared by every robot's camera.

The thread keeps only the newest pending frame of each robot: when decoding falls behind,
stale frames are dropped (the camera counts them), and memory holds at most one pending
frame per robot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Tuple

import numpy as np
from sensor_msgs.msg import Image

from ..codec.rclpy_fast_paths import set_bytes
from ..transport.wire import FrameError

_log = logging.getLogger(__name__)

Stamp = Tuple[int, int]  # (sec, nanosec)


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
class PendingFrame:
    """A frame waiting for the decode thread, and what to do with its image."""

    jpeg: bytes
    stamp: Stamp
    frame_id: str
    publish: Callable[[Image], None]
    on_done: Callable[[float], None]  # decode seconds, or -1 for an undecodable frame


class DecodeWorker:
    """One thread decoding the newest pending frame of each camera, in arrival order."""

    def __init__(self, decoder: Optional[JpegDecoder] = None) -> None:
        self.decoder = decoder or JpegDecoder()
        self._pending: Dict[str, PendingFrame] = {}
        self._order: Deque[str] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name='roboflare-decode', daemon=True)
        self._thread.start()

    def submit(self, camera: str, job: PendingFrame) -> bool:
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


__all__ = ['bgr8_message', 'DecodeWorker', 'jpeg_size', 'JpegDecoder', 'PendingFrame']
