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
A simulated robot: its topics as rosbridge-style JSON, its camera, its log lines.

Each robot drives a circle in a 10 m x 10 m room; odometry, IMU, laser scan, TF and camera
are consistent with that motion, so rviz shows something plausible.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .contract import format_time

ROOM_HALF_SIZE = 5.0
SCAN_BEAMS = 360


def stamp(t: float) -> Dict[str, int]:
    sec = int(t)
    return {'sec': sec, 'nanosec': int((t - sec) * 1e9)}


def header(t: float, frame_id: str) -> Dict[str, Any]:
    return {'stamp': stamp(t), 'frame_id': frame_id}


def quaternion_from_yaw(yaw: float) -> Dict[str, float]:
    return {'x': 0.0, 'y': 0.0, 'z': math.sin(yaw / 2), 'w': math.cos(yaw / 2)}


def transform(t: float, parent: str, child: str, xyz: Tuple[float, float, float],
              rotation: Dict[str, float]) -> Dict[str, Any]:
    return {'header': header(t, parent), 'child_frame_id': child,
            'transform': {'translation': {'x': xyz[0], 'y': xyz[1], 'z': xyz[2]},
                          'rotation': rotation}}


# base_link -> sensors; camera_optical_frame follows REP 103 (z forward, x right, y down).
STATIC_TRANSFORMS = (
    ('base_link', 'laser', (0.15, 0.0, 0.2), {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0}),
    ('base_link', 'imu_link', (0.0, 0.0, 0.1), {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0}),
    ('base_link', 'camera_link', (0.2, 0.0, 0.3), {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0}),
    ('camera_link', 'camera_optical_frame', (0.0, 0.0, 0.0),
     {'x': -0.5, 'y': 0.5, 'z': -0.5, 'w': 0.5}),
)


@dataclass(frozen=True)
class TopicSpec:
    """A simulated topic: its type, its rate, and how to build a message at a time."""

    name: str
    type: str  # noqa: A003 - the contract's field name
    rate_hz: float
    latched: bool = False


TOPICS = (
    TopicSpec('/odom', 'nav_msgs/msg/Odometry', 20.0),
    TopicSpec('/scan', 'sensor_msgs/msg/LaserScan', 10.0),
    TopicSpec('/imu', 'sensor_msgs/msg/Imu', 50.0),
    TopicSpec('/chatter', 'std_msgs/msg/String', 1.0),
    TopicSpec('/battery_voltage', 'std_msgs/msg/Float32', 1.0),
    TopicSpec('/tf', 'tf2_msgs/msg/TFMessage', 20.0),
    TopicSpec('/tf_static', 'tf2_msgs/msg/TFMessage', 0.2, latched=True),
)
TOPICS_BY_NAME = {spec.name: spec for spec in TOPICS}


class SimRobot:
    """One simulated robot; message builders are pure functions of time."""

    def __init__(self, index: int, robot_id: str, name: str) -> None:
        self.index = index
        self.id = robot_id
        self.name = name
        self.radius = 1.5 + 0.5 * (index % 5)
        self.omega = 0.3 + 0.05 * (index % 7)  # rad/s around the circle
        self.phase = index * 0.9
        self._counter = 0
        angles = np.linspace(-math.pi, math.pi, SCAN_BEAMS, endpoint=False)
        self._beam_cos, self._beam_sin = np.cos(angles), np.sin(angles)
        self.builders: Dict[str, Callable[[float], Dict[str, Any]]] = {
            '/odom': self.odometry, '/scan': self.laser_scan, '/imu': self.imu,
            '/chatter': self.chatter, '/battery_voltage': self.battery, '/tf': self.tf,
            '/tf_static': self.tf_static}

    def pose(self, t: float) -> Tuple[float, float, float]:
        angle = self.omega * t + self.phase
        return (self.radius * math.cos(angle), self.radius * math.sin(angle),
                angle + math.pi / 2)

    def odometry(self, t: float) -> Dict[str, Any]:
        x, y, yaw = self.pose(t)
        speed = self.omega * self.radius
        covariance = [0.0] * 36
        for i in range(6):
            covariance[i * 7] = 0.01
        return {
            'header': header(t, 'odom'), 'child_frame_id': 'base_link',
            'pose': {'pose': {'position': {'x': x, 'y': y, 'z': 0.0},
                              'orientation': quaternion_from_yaw(yaw)},
                     'covariance': covariance},
            'twist': {'twist': {'linear': {'x': speed, 'y': 0.0, 'z': 0.0},
                                'angular': {'x': 0.0, 'y': 0.0, 'z': self.omega}},
                      'covariance': covariance}}

    def laser_scan(self, t: float) -> Dict[str, Any]:
        x, y, yaw = self.pose(t)
        # Distance from the laser to the room's walls along each beam.
        c, s = math.cos(yaw), math.sin(yaw)
        dx = self._beam_cos * c - self._beam_sin * s
        dy = self._beam_cos * s + self._beam_sin * c
        with np.errstate(divide='ignore', invalid='ignore'):
            tx = np.where(dx > 0, (ROOM_HALF_SIZE - x) / dx, (-ROOM_HALF_SIZE - x) / dx)
            ty = np.where(dy > 0, (ROOM_HALF_SIZE - y) / dy, (-ROOM_HALF_SIZE - y) / dy)
        ranges = np.round(np.minimum(np.abs(tx), np.abs(ty)), 4).tolist()
        return {
            'header': header(t, 'laser'), 'angle_min': -math.pi,
            'angle_max': math.pi - 2 * math.pi / SCAN_BEAMS,
            'angle_increment': 2 * math.pi / SCAN_BEAMS, 'time_increment': 0.0,
            'scan_time': 0.1, 'range_min': 0.05, 'range_max': 12.0,
            # Beyond range_max reads as infinity, which JSON lacks: the contract sends null.
            'ranges': [None if r > 12.0 else r for r in ranges],
            'intensities': []}

    def imu(self, t: float) -> Dict[str, Any]:
        _, _, yaw = self.pose(t)
        centripetal = self.omega ** 2 * self.radius
        return {
            'header': header(t, 'imu_link'), 'orientation': quaternion_from_yaw(yaw),
            'orientation_covariance': [0.001, 0, 0, 0, 0.001, 0, 0, 0, 0.001],
            'angular_velocity': {'x': 0.0, 'y': 0.0, 'z': self.omega},
            'angular_velocity_covariance': [0.0] * 9,
            'linear_acceleration': {'x': 0.0, 'y': centripetal, 'z': 9.81},
            'linear_acceleration_covariance': [0.0] * 9}

    def chatter(self, t: float) -> Dict[str, Any]:
        self._counter += 1
        return {'data': f'hello from {self.name} #{self._counter}'}

    def battery(self, t: float) -> Dict[str, Any]:
        return {'data': round(24.0 - (t % 3600) / 3600 * 2.0, 3)}

    def tf(self, t: float) -> Dict[str, Any]:
        x, y, yaw = self.pose(t)
        return {'transforms': [transform(t, 'odom', 'base_link', (x, y, 0.0),
                                         quaternion_from_yaw(yaw))]}

    def tf_static(self, t: float) -> Dict[str, Any]:
        return {'transforms': [transform(t, parent, child, xyz, rotation)
                               for parent, child, xyz, rotation in STATIC_TRANSFORMS]}

    def log_record(self, t: float, n: int) -> Dict[str, Any]:
        level, text = LOG_SCRIPT[n % len(LOG_SCRIPT)]
        x, y, _ = self.pose(t)
        return {'ts': format_time(t), 'level': level, 'logger': f'{self.name}.navigator',
                'msg': text.format(n=n, x=x, y=y), 'file': 'navigator.py',
                'function': 'step', 'line': 40 + n % 7}


LOG_SCRIPT = (
    ('info', 'waypoint {n} reached at ({x:.2f}, {y:.2f})'),
    ('debug', 'planner: 42 poses, cost 1.{n}'),
    ('info', 'battery nominal'),
    ('warn', 'laser: 3 beams out of range near ({x:.2f}, {y:.2f})'),
    ('info', 'localization converged'),
    ('error', 'recovery behaviour {n}: clearing costmap'),
)


class CameraFeed:
    """A moving test pattern, encoded once into a loop of real JPEG frames."""

    LOOP_FRAMES = 30

    def __init__(self, width: int, height: int, quality: int = 80,
                 encoder: Optional[Callable[[np.ndarray, int], bytes]] = None) -> None:
        self.width, self.height = width, height
        encode = encoder or _encode_jpeg
        self.frames: List[bytes] = [encode(self._pattern(i), quality)
                                    for i in range(self.LOOP_FRAMES)]

    def frame(self, n: int) -> bytes:
        return self.frames[n % len(self.frames)]

    def _pattern(self, i: int) -> np.ndarray:
        h, w = self.height, self.width
        ys, xs = np.mgrid[0:h, 0:w]
        phase = i / self.LOOP_FRAMES
        image = np.empty((h, w, 3), np.uint8)
        image[..., 0] = (xs * 255 // max(w - 1, 1)).astype(np.uint8)
        image[..., 1] = (ys * 255 // max(h - 1, 1)).astype(np.uint8)
        image[..., 2] = ((np.sin((xs / w + phase) * 2 * math.pi) + 1) * 127).astype(np.uint8)
        # A white square crossing the image, so motion is visible.
        size = max(4, min(h, w) // 5)
        x0 = int(phase * (w - size))
        y0 = (h - size) // 2
        image[y0:y0 + size, x0:x0 + size] = 255
        # Sensor noise: without it the JPEGs are a third the size of a real camera's.
        noise = np.random.default_rng(i).integers(-8, 9, image.shape, dtype=np.int16)
        return np.clip(image + noise, 0, 255).astype(np.uint8)


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import simplejpeg
    return simplejpeg.encode_jpeg(rgb, quality=quality, colorspace='RGB')
