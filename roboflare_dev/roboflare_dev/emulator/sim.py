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

Each robot drives a circle in a 10 m x 10 m room with a pillar, shelves, a bench and
crates. Odometry (which drifts, corrected by ``map -> odom``), IMU, laser scan (walls and
obstacles), TF (wheels turning), the latched map of the room and the robot's URDF agree
with that motion and with each other, so rviz shows something plausible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from xml.sax.saxutils import quoteattr

import numpy as np

from .contract import format_time

ROOM_HALF_SIZE = 5.0
SCAN_BEAMS = 360
WALL_THICKNESS = 0.1
MAP_MARGIN = 0.5         # unknown space mapped around the room
MAP_RESOLUTION = 0.05    # metres per cell unless a cell count is asked for
# (x0, y0, x1, y1), metres: clear of every robot's circle (radii 1.5-3.5 m, footprint 0.3 m).
OBSTACLES = (
    (-0.5, -0.5, 0.5, 0.5),    # a pillar in the middle of the room
    (4.1, -2.0, 4.6, 2.0),     # shelves along the east wall
    (-1.5, -4.7, 1.5, -4.2),   # a workbench along the south wall
    (-4.6, 3.6, -3.6, 4.6),    # crates in the north-west corner
)
FOOTPRINT_RADIUS = 0.3
WHEEL_RADIUS = 0.1
WHEEL_SEPARATION = 0.4


def stamp(t: float) -> Dict[str, int]:
    sec = int(t)
    return {'sec': sec, 'nanosec': int((t - sec) * 1e9)}


def header(t: float, frame_id: str) -> Dict[str, Any]:
    return {'stamp': stamp(t), 'frame_id': frame_id}


def quaternion_from_yaw(yaw: float) -> Dict[str, float]:
    return {'x': 0.0, 'y': 0.0, 'z': math.sin(yaw / 2), 'w': math.cos(yaw / 2)}


def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> Dict[str, float]:
    """Return the quaternion of URDF's fixed-axis roll, pitch, yaw."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return {'x': sr * cp * cy - cr * sp * sy, 'y': cr * sp * cy + sr * cp * sy,
            'z': cr * cp * sy - sr * sp * cy, 'w': cr * cp * cy + sr * sp * sy}


def transform(t: float, parent: str, child: str, xyz: Tuple[float, float, float],
              rotation: Dict[str, float]) -> Dict[str, Any]:
    return {'header': header(t, parent), 'child_frame_id': child,
            'transform': {'translation': {'x': xyz[0], 'y': xyz[1], 'z': xyz[2]},
                          'rotation': rotation}}


@dataclass(frozen=True)
class Joint:
    """A joint of the robot's URDF; fixed ones are /tf_static, wheels turn on /tf."""

    parent: str
    child: str
    xyz: Tuple[float, float, float]
    rpy: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    wheel: bool = False  # continuous about y


# camera_optical_frame follows REP 103 (z forward, x right, y down).
JOINTS = (
    Joint('base_link', 'laser', (0.15, 0.0, 0.2)),
    Joint('base_link', 'imu_link', (0.0, 0.0, 0.1)),
    Joint('base_link', 'camera_link', (0.2, 0.0, 0.3)),
    Joint('camera_link', 'camera_optical_frame', (0.0, 0.0, 0.0),
          (-math.pi / 2, 0.0, -math.pi / 2)),
    Joint('base_link', 'left_wheel_link', (0.0, WHEEL_SEPARATION / 2, WHEEL_RADIUS), wheel=True),
    Joint('base_link', 'right_wheel_link', (0.0, -WHEEL_SEPARATION / 2, WHEEL_RADIUS), wheel=True),
)
STATIC_TRANSFORMS = tuple((j.parent, j.child, j.xyz, quaternion_from_rpy(*j.rpy))
                          for j in JOINTS if not j.wheel)


@dataclass(frozen=True)
class TopicSpec:
    """A simulated topic: its type, its rate, and how to build a message at a time."""

    name: str
    type: str  # noqa: A003 - the contract's field name
    rate_hz: float
    latched: bool = False


TOPICS = (
    TopicSpec('/map', 'nav_msgs/msg/OccupancyGrid', 0.0, latched=True),
    TopicSpec('/robot_description', 'std_msgs/msg/String', 0.0, latched=True),
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

    def __init__(self, index: int, robot_id: str, name: str, map_cells: int = 0) -> None:
        self.index = index
        self.id = robot_id
        self.name = name
        self.map_cells = map_cells  # 0: the room at MAP_RESOLUTION
        self.radius = 1.5 + 0.5 * (index % 5)
        self.omega = 0.3 + 0.05 * (index % 7)  # rad/s around the circle
        self.phase = index * 0.9
        self.clock_offset_s = 0.0  # how far its clock is ahead of the real time
        self._counter = 0
        angles = np.linspace(-math.pi, math.pi, SCAN_BEAMS, endpoint=False)
        self._beam_cos, self._beam_sin = np.cos(angles), np.sin(angles)
        self.builders: Dict[str, Callable[[float], Dict[str, Any]]] = {
            '/odom': self.odometry, '/scan': self.laser_scan, '/imu': self.imu,
            '/chatter': self.chatter, '/battery_voltage': self.battery, '/tf': self.tf,
            '/tf_static': self.tf_static, '/map': self.occupancy_grid,
            '/robot_description': self.robot_description}

    def clock(self) -> float:
        """Return the robot's time: what it stamps its messages and logs with."""
        return time.time() + self.clock_offset_s

    def pose(self, t: float) -> Tuple[float, float, float]:
        angle = self.omega * t + self.phase
        return (self.radius * math.cos(angle), self.radius * math.sin(angle),
                angle + math.pi / 2)

    def drift(self, t: float) -> Tuple[float, float]:
        """Return where odometry has drifted to (localisation's map -> odom correction)."""
        return (0.05 * math.sin(0.05 * t + self.phase), 0.05 * math.cos(0.04 * t + self.phase))

    def odom_pose(self, t: float) -> Tuple[float, float, float]:
        x, y, yaw = self.pose(t)
        dx, dy = self.drift(t)
        return x - dx, y - dy, yaw

    def odometry(self, t: float) -> Dict[str, Any]:
        x, y, yaw = self.odom_pose(t)
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
        c, s = math.cos(yaw), math.sin(yaw)
        laser_x, laser_y, _ = JOINTS[0].xyz
        ox, oy = x + laser_x * c - laser_y * s, y + laser_x * s + laser_y * c
        dx = self._beam_cos * c - self._beam_sin * s
        dy = self._beam_cos * s + self._beam_sin * c
        ranges = np.round(beam_ranges(ox, oy, dx, dy), 4).tolist()
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
        x, y, yaw = self.odom_pose(t)
        dx, dy = self.drift(t)
        transforms = [transform(t, 'map', 'odom', (dx, dy, 0.0), quaternion_from_yaw(0.0)),
                      transform(t, 'odom', 'base_link', (x, y, 0.0), quaternion_from_yaw(yaw))]
        # What robot_state_publisher makes of the wheels' joint states: they turn as it drives.
        for joint in JOINTS:
            if joint.wheel:
                side = 1.0 if joint.xyz[1] > 0 else -1.0
                travelled = self.omega * t * (self.radius - side * WHEEL_SEPARATION / 2)
                angle = (travelled / WHEEL_RADIUS) % (2 * math.pi)
                transforms.append(transform(t, joint.parent, joint.child, joint.xyz,
                                            quaternion_from_rpy(0.0, angle, 0.0)))
        return {'transforms': transforms}

    def tf_static(self, t: float) -> Dict[str, Any]:
        return {'transforms': [transform(t, parent, child, xyz, rotation)
                               for parent, child, xyz, rotation in STATIC_TRANSFORMS]}

    def occupancy_grid(self, t: float) -> Dict[str, Any]:
        """Return the latched map of the room (nav_msgs/OccupancyGrid, row-major from origin)."""
        grid, resolution = floor_grid(self.map_cells)
        origin = -ROOM_HALF_SIZE - MAP_MARGIN
        return {
            'header': header(t, 'map'),
            'info': {'map_load_time': stamp(t), 'resolution': resolution,
                     'width': grid.shape[1], 'height': grid.shape[0],
                     'origin': {'position': {'x': origin, 'y': origin, 'z': 0.0},
                                'orientation': quaternion_from_yaw(0.0)}},
            'data': grid.ravel().tolist()}

    def robot_description(self, t: float) -> Dict[str, Any]:
        return {'data': robot_urdf(self.name)}

    def log_record(self, t: float, n: int) -> Dict[str, Any]:
        level, text = LOG_SCRIPT[n % len(LOG_SCRIPT)]
        x, y, _ = self.pose(t)
        return {'ts': format_time(t), 'level': level, 'logger': f'{self.name}.navigator',
                'msg': text.format(n=n, x=x, y=y), 'file': 'navigator.py',
                'function': 'step', 'line': 40 + n % 7}


def beam_ranges(ox: float, oy: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Return the distance along each beam from (ox, oy) to the walls or an obstacle."""
    with np.errstate(divide='ignore', invalid='ignore'):
        inv_x, inv_y = 1.0 / dx, 1.0 / dy
        # Inside the room, the walls are met where the beam leaves the room's box...
        nearest = np.minimum(
            np.abs(np.where(dx > 0, ROOM_HALF_SIZE - ox, -ROOM_HALF_SIZE - ox) * inv_x),
            np.abs(np.where(dy > 0, ROOM_HALF_SIZE - oy, -ROOM_HALF_SIZE - oy) * inv_y))
        # ...and an obstacle where it enters its box (the slab method).
        for x0, y0, x1, y1 in OBSTACLES:
            tx0, tx1 = (x0 - ox) * inv_x, (x1 - ox) * inv_x
            ty0, ty1 = (y0 - oy) * inv_y, (y1 - oy) * inv_y
            enter = np.maximum(np.minimum(tx0, tx1), np.minimum(ty0, ty1))
            leave = np.minimum(np.maximum(tx0, tx1), np.maximum(ty0, ty1))
            hit = (enter <= leave) & (enter > 0)
            nearest = np.where(hit, np.minimum(nearest, enter), nearest)
    return nearest


@lru_cache(maxsize=2)
def floor_grid(cells: int = 0) -> Tuple[np.ndarray, float]:
    """
    Return the room as an occupancy grid (int8, rows from the origin up) and its resolution.

    Walls and the edges of obstacles are occupied (100), the floor is free (0), outside the
    walls and inside obstacles is unknown (-1), as a SLAM map of the room would have it.
    """
    extent = 2 * (ROOM_HALF_SIZE + MAP_MARGIN)
    n = cells or round(extent / MAP_RESOLUTION)
    resolution = extent / n
    centres = (np.arange(n) + 0.5) * resolution - extent / 2
    x, y = centres[np.newaxis, :], centres[:, np.newaxis]
    grid = np.zeros((n, n), np.int8)
    distance_out = np.maximum(np.abs(x), np.abs(y))  # 'radius' of the room's square
    band = max(WALL_THICKNESS, resolution)  # what a laser sees of a wall's thickness
    grid[distance_out >= ROOM_HALF_SIZE + band] = -1
    grid[(distance_out >= ROOM_HALF_SIZE) & (distance_out < ROOM_HALF_SIZE + band)] = 100
    for x0, y0, x1, y1 in OBSTACLES:
        inside_x, inside_y = (x >= x0) & (x <= x1), (y >= y0) & (y <= y1)
        depth = np.minimum(np.minimum(x - x0, x1 - x), np.minimum(y - y0, y1 - y))
        inside = inside_x & inside_y
        grid[inside] = -1
        grid[inside & (depth < band)] = 100
    return grid, resolution


def robot_urdf(name: str) -> str:
    """Return the robot's URDF: its links are the frames of its TF tree under base_link."""
    visuals = {
        'base_link': ('<cylinder radius="0.3" length="0.15"/>', '0 0 0.12', 'grey'),
        'laser': ('<cylinder radius="0.05" length="0.06"/>', '0 0 0', 'black'),
        'imu_link': ('<box size="0.04 0.04 0.02"/>', '0 0 0', 'black'),
        'camera_link': ('<box size="0.04 0.12 0.04"/>', '0 0 0', 'black'),
        'left_wheel_link': ('<cylinder radius="0.1" length="0.04"/>', '0 0 0', 'black'),
        'right_wheel_link': ('<cylinder radius="0.1" length="0.04"/>', '0 0 0', 'black'),
    }
    lines = [f'<robot name={quoteattr(name)}>',
             '  <material name="grey"><color rgba="0.6 0.6 0.65 1"/></material>',
             '  <material name="black"><color rgba="0.1 0.1 0.1 1"/></material>']
    for link in ['base_link'] + [joint.child for joint in JOINTS]:
        if link in visuals:
            geometry, xyz, material = visuals[link]
            # Wheels are cylinders along their axle (y): roll them onto it.
            rpy = '1.5708 0 0' if link.endswith('wheel_link') else '0 0 0'
            lines.append(f'  <link name="{link}"><visual><origin xyz="{xyz}" rpy="{rpy}"/>'
                         f'<geometry>{geometry}</geometry><material name="{material}"/>'
                         '</visual></link>')
        else:
            lines.append(f'  <link name="{link}"/>')
    for joint in JOINTS:
        kind = 'continuous' if joint.wheel else 'fixed'
        axis = '<axis xyz="0 1 0"/>' if joint.wheel else ''
        xyz = ' '.join(f'{v:g}' for v in joint.xyz)
        rpy = ' '.join(f'{v:.6f}' for v in joint.rpy)
        lines.append(f'  <joint name="{joint.child}_joint" type="{kind}">'
                     f'<parent link="{joint.parent}"/><child link="{joint.child}"/>'
                     f'<origin xyz="{xyz}" rpy="{rpy}"/>{axis}</joint>')
    lines.append('</robot>')
    return '\n'.join(lines)


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
