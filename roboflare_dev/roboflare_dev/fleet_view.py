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
The fleet from above, as rviz's top-down view shows it, saved as a PNG.

:class:`FleetView` gathers what rviz would show (each robot's map, pose, footprint and
latest scan) from mirrored messages, and places it in the fleet frame through the TF tree:
numpy only, testable without a ROS graph. :func:`draw` renders a snapshot with matplotlib
(Agg, no display needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
import threading
from typing import Any, Dict, List, Optional, Tuple
import xml.etree.ElementTree as ElementTree

import numpy as np

from .tf_tree import matrix, TransformTree, yaw_of

DEFAULT_FOOTPRINT_RADIUS = 0.3
COLOURS = ('#ff5500', '#00aaff', '#78dc3c', '#e63cc8', '#fad228', '#8c6eff', '#00d2be',
           '#ff8c8c')


def footprint_radius(urdf: str) -> Optional[float]:
    """Return the radius of the base link's cylinder or box in a URDF, if it has one."""
    try:
        robot = ElementTree.fromstring(urdf)
    except ElementTree.ParseError:
        return None
    for link in robot.iter('link'):
        if link.get('name') != 'base_link':
            continue
        cylinder, box = link.find('visual/geometry/cylinder'), link.find('visual/geometry/box')
        try:
            if cylinder is not None:
                return float(cylinder.get('radius', ''))
            if box is not None:
                sx, sy, _ = (float(v) for v in box.get('size', '').split())
                return math.hypot(sx, sy) / 2
        except ValueError:
            return None
    return None


def scan_points(scan: Any) -> np.ndarray:
    """Return a LaserScan's valid returns as (x, y) points in its own frame."""
    ranges = np.asarray(scan.ranges, dtype=np.float64)
    angles = scan.angle_min + scan.angle_increment * np.arange(len(ranges))
    valid = np.isfinite(ranges) & (ranges >= scan.range_min) & (ranges <= scan.range_max)
    return np.column_stack((ranges[valid] * np.cos(angles[valid]),
                            ranges[valid] * np.sin(angles[valid])))


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a homogeneous matrix to (x, y) points on the z = 0 plane."""
    return points @ m[:2, :2].T + m[:2, 3]


@dataclass
class RobotView:
    """What is known of one robot, in its own frames (updated from its topics)."""

    name: str
    frame_prefix: str
    grid: Optional[Any] = None        # the latest OccupancyGrid
    scan: Optional[Any] = None        # the latest LaserScan
    footprint: float = DEFAULT_FOOTPRINT_RADIUS


@dataclass
class PlacedRobot:
    """One robot in the fleet frame, ready to draw."""

    name: str
    colour: str
    pose: Optional[Tuple[float, float, float]]            # x, y, yaw of its base_link
    footprint: float
    scan: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    grid: Optional[np.ndarray] = None                      # rows from the origin up
    grid_transform: Optional[np.ndarray] = None            # fleet <- grid cell (x, y) m
    resolution: float = 0.0


class FleetView:
    """Mirrored maps, poses and scans of several robots (callbacks from any thread)."""

    def __init__(self, fleet_frame: str) -> None:
        self.fleet_frame = fleet_frame
        self.tf = TransformTree()
        self.robots: Dict[str, RobotView] = {}
        self._lock = threading.Lock()

    def add_robot(self, name: str, frame_prefix: str) -> None:
        with self._lock:
            self.robots.setdefault(name, RobotView(name, frame_prefix))

    def on_tf(self, message: Any) -> None:
        with self._lock:
            self.tf.add(message.transforms)

    def on_map(self, name: str, grid: Any) -> None:
        with self._lock:
            self.robots[name].grid = grid

    def on_scan(self, name: str, scan: Any) -> None:
        with self._lock:
            self.robots[name].scan = scan

    def on_description(self, name: str, urdf: str) -> None:
        radius = footprint_radius(urdf)
        with self._lock:
            self.robots[name].footprint = radius or DEFAULT_FOOTPRINT_RADIUS

    def snapshot(self) -> List[PlacedRobot]:
        """Return every robot placed in the fleet frame (what is not connected is left out)."""
        with self._lock:
            return [self._place(index, robot)
                    for index, robot in enumerate(self.robots.values())]

    def _place(self, index: int, robot: RobotView) -> PlacedRobot:
        base = self.tf.lookup(self.fleet_frame, robot.frame_prefix + 'base_link')
        placed = PlacedRobot(robot.name, COLOURS[index % len(COLOURS)],
                             None if base is None else (base[0, 3], base[1, 3], yaw_of(base)),
                             robot.footprint)
        scan = robot.scan
        if scan is not None:
            laser = self.tf.lookup(self.fleet_frame, scan.header.frame_id,
                                   scan.header.stamp)
            if laser is not None:
                placed.scan = transform_points(laser, scan_points(scan))
        grid = robot.grid
        if grid is not None:
            frame = self.tf.lookup(self.fleet_frame, grid.header.frame_id)
            if frame is not None:
                info = grid.info
                placed.grid = np.asarray(grid.data, dtype=np.int8).reshape(info.height,
                                                                           info.width)
                placed.grid_transform = frame @ matrix(info.origin.position,
                                                       info.origin.orientation)
                placed.resolution = info.resolution
        return placed


def draw(robots: List[PlacedRobot], path: Path, title: str = '') -> None:
    """Render robots (maps, footprints, headings, scans, names) from above into a PNG."""
    import matplotlib
    matplotlib.use('Agg')  # files only: no display, safe in any thread
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle
    from matplotlib.transforms import Affine2D

    figure = Figure(figsize=(8, 8), dpi=100, facecolor='#303030')
    axes = figure.add_subplot()
    axes.set_facecolor('#303030')
    axes.set_aspect('equal')
    # rviz's map scheme: free floor light, occupied black, unknown left out.
    palette = np.array([[0.0, 0.0, 0.0, 0.0], [0.85, 0.85, 0.85, 1.0], [0.0, 0.0, 0.0, 1.0]])
    for robot in robots:
        if robot.grid is None or robot.grid_transform is None:
            continue
        grid = robot.grid
        index = np.where(grid < 0, 0, np.where(grid >= 50, 2, 1))
        height, width = grid.shape
        m = robot.grid_transform
        placement = Affine2D(np.array([[m[0, 0], m[0, 1], m[0, 3]], [m[1, 0], m[1, 1], m[1, 3]],
                                       [0.0, 0.0, 1.0]]))
        axes.imshow(palette[index], origin='lower', interpolation='nearest', alpha=0.5,
                    extent=(0, width * robot.resolution, 0, height * robot.resolution),
                    transform=placement + axes.transData)
    for robot in robots:
        if len(robot.scan):
            axes.scatter(robot.scan[:, 0], robot.scan[:, 1], s=5, color=robot.colour,
                         linewidths=0)
        if robot.pose is None:
            continue
        x, y, yaw = robot.pose
        axes.add_patch(Circle((x, y), robot.footprint, facecolor=robot.colour, alpha=0.45,
                              edgecolor=robot.colour))
        axes.arrow(x, y, robot.footprint * 1.6 * math.cos(yaw),
                   robot.footprint * 1.6 * math.sin(yaw), width=0.04, color=robot.colour,
                   length_includes_head=True)
        axes.annotate(robot.name, (x, y), xytext=(8, 8), textcoords='offset points',
                      color='white', fontsize=10, fontweight='bold')
    (x0, y0), (x1, y1) = _extent(robots)
    half = max(x1 - x0, y1 - y0) / 2 + 0.5
    axes.set_xlim((x0 + x1) / 2 - half, (x0 + x1) / 2 + half)
    axes.set_ylim((y0 + y1) / 2 - half, (y0 + y1) / 2 + half)
    axes.tick_params(colors='#bbbbbb')
    axes.grid(color='#505050', linewidth=0.5)
    axes.set_xlabel('x (m)', color='#bbbbbb')
    axes.set_ylabel('y (m)', color='#bbbbbb')
    if title:
        axes.set_title(title, color='white')
    figure.savefig(path)


def _extent(robots: List[PlacedRobot]) -> Tuple[np.ndarray, np.ndarray]:
    points = [np.zeros((1, 2))]
    for robot in robots:
        if robot.grid is not None and robot.grid_transform is not None:
            height, width = robot.grid.shape
            corners = np.array([[0, 0], [width, 0], [0, height], [width, height]])
            points.append(transform_points(robot.grid_transform, corners * robot.resolution))
        if robot.pose is not None:
            x, y, _ = robot.pose
            points.append(np.array([[x - robot.footprint, y - robot.footprint],
                                    [x + robot.footprint, y + robot.footprint]]))
        points.append(robot.scan)
    everything = np.concatenate(points)
    return everything.min(axis=0), everything.max(axis=0)


__all__ = ['FleetView', 'PlacedRobot', 'draw', 'footprint_radius', 'scan_points',
           'transform_points']
