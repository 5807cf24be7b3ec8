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
"""The TF tree and the top-down fleet picture, from decoded emulator messages (no ROS graph)."""

import math

import numpy as np
import pytest
from roboflare_bridge.codec.json_codec import Codec
from roboflare_dev.emulator.sim import SimRobot
from roboflare_dev.fleet_view import draw, FleetView, footprint_radius
from roboflare_dev.tf_tree import TransformTree

T = 12.5
ROBOTS = [SimRobot(i, f'rbt_{i + 1:04d}', f'robot-{i + 1}') for i in range(3)]


def decoded(robot, prefix, builder, type_name):
    return Codec(prefix).decode(type_name, getattr(robot, builder)(T))


def fleet_link(prefix):
    """Return what the mirror publishes on /tf_static: the fleet frame above the root."""
    return Codec().decode('tf2_msgs/msg/TFMessage', {'transforms': [{
        'header': {'frame_id': 'fleet'}, 'child_frame_id': prefix + 'map',
        'transform': {'rotation': {'w': 1.0}}}]})


def test_lookups_follow_the_tree_both_ways_and_unconnected_frames_are_none():
    tree = TransformTree()
    quarter_turn = {'z': math.sin(math.pi / 4), 'w': math.cos(math.pi / 4)}
    tree.add(Codec().decode('tf2_msgs/msg/TFMessage', {'transforms': [
        {'header': {'frame_id': 'a'}, 'child_frame_id': 'b',
         'transform': {'translation': {'x': 1.0}, 'rotation': quarter_turn}},
        {'header': {'frame_id': 'b'}, 'child_frame_id': 'c',
         'transform': {'translation': {'x': 2.0}, 'rotation': {'w': 1.0}}},
        {'header': {'frame_id': 'a'}, 'child_frame_id': 'd',
         'transform': {'translation': {'y': -1.0}, 'rotation': {'w': 1.0}}}]}).transforms)
    c_in_a = tree.lookup('a', 'c')
    assert c_in_a[:3, 3] == pytest.approx([1.0, 2.0, 0.0])  # b is turned 90 degrees
    assert tree.lookup('d', 'c')[:3, 3] == pytest.approx([1.0, 3.0, 0.0])
    assert tree.lookup('c', 'a') == pytest.approx(np.linalg.inv(c_in_a))
    assert tree.lookup('a', 'elsewhere') is None
    assert tree.frames() == ['a', 'b', 'c', 'd']


def fleet_view():
    view = FleetView('fleet')
    for robot in ROBOTS:
        prefix = f'{robot.name}/'
        view.add_robot(robot.name, prefix)
        view.on_tf(fleet_link(prefix))
        view.on_tf(decoded(robot, prefix, 'tf', 'tf2_msgs/msg/TFMessage'))
        view.on_tf(decoded(robot, prefix, 'tf_static', 'tf2_msgs/msg/TFMessage'))
        view.on_map(robot.name, decoded(robot, prefix, 'occupancy_grid',
                                        'nav_msgs/msg/OccupancyGrid'))
        view.on_scan(robot.name, decoded(robot, prefix, 'laser_scan',
                                         'sensor_msgs/msg/LaserScan'))
        view.on_description(robot.name, robot.robot_description(T)['data'])
    return view


def test_each_robot_is_placed_where_it_is_and_its_scan_lands_on_its_map():
    placed = {robot.name: robot for robot in fleet_view().snapshot()}
    for robot in ROBOTS:
        seen = placed[robot.name]
        x, y, yaw = robot.pose(T)
        assert seen.pose == pytest.approx((x, y, math.remainder(yaw, 2 * math.pi)))
        assert seen.footprint == 0.3  # read from the URDF's base_link
        # Scan points, through laser -> base -> odom -> map -> fleet, hit occupied cells.
        cells = np.linalg.inv(seen.grid_transform)
        ij = np.floor((seen.scan @ cells[:2, :2].T + cells[:2, 3]) / seen.resolution)
        rows, cols = ij[:, 1].astype(int), ij[:, 0].astype(int)
        near_occupied = [(seen.grid[r - 1:r + 2, c - 1:c + 2] == 100).any()
                         for r, c in zip(rows, cols)]
        assert len(near_occupied) > 300 and all(near_occupied)


def test_draw_writes_a_png_of_the_fleet(tmp_path):
    path = tmp_path / 'fleet.png'
    draw(fleet_view().snapshot(), path, 'three robots')
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000


def test_footprint_comes_from_the_base_links_geometry():
    assert footprint_radius('<robot><link name="base_link"><visual><geometry>'
                            '<cylinder radius="0.42" length="1"/></geometry></visual></link>'
                            '</robot>') == 0.42
    assert footprint_radius('<robot><link name="base_link"><visual><geometry>'
                            '<box size="0.6 0.8 0.2"/></geometry></visual></link>'
                            '</robot>') == pytest.approx(0.5)
    assert footprint_radius('<robot><link name="base_link"/></robot>') is None
    assert footprint_radius('not xml') is None


def test_a_lookup_at_a_stamp_uses_the_transform_of_that_time():
    robot = ROBOTS[0]
    tree = TransformTree()
    codec = Codec()
    for t in (10.0, 10.05, 10.1):
        tree.add(codec.decode('tf2_msgs/msg/TFMessage', robot.tf(t)).transforms)
    at = codec.decode('builtin_interfaces/msg/Time', {'sec': 10, 'nanosec': 40_000_000})
    x, y, _ = robot.pose(10.05)
    assert tree.lookup('map', 'base_link', at)[:2, 3] == pytest.approx([x, y])
    latest_x, latest_y, _ = robot.pose(10.1)
    assert tree.lookup('map', 'base_link')[:2, 3] == pytest.approx([latest_x, latest_y])
    # A clock that steps back restarts the history rather than mixing two timelines.
    tree.add(codec.decode('tf2_msgs/msg/TFMessage', robot.tf(3.0)).transforms)
    back_x, back_y, _ = robot.pose(3.0)
    assert tree.lookup('map', 'base_link', at)[:2, 3] == pytest.approx([back_x, back_y])


def test_the_latest_common_time_and_what_a_lookup_may_ask_as_tf2_would():
    robot = ROBOTS[0]
    tree = TransformTree()
    codec = Codec()
    tree.add(codec.decode('tf2_msgs/msg/TFMessage', robot.tf_static(1.0)).transforms,
             static=True)
    for t in (10.0, 10.5, 11.0):
        tree.add(codec.decode('tf2_msgs/msg/TFMessage', robot.tf(t)).transforms)
    laser = next(t.child_frame_id for t in codec.decode(
        'tf2_msgs/msg/TFMessage', robot.tf_static(1.0)).transforms)
    assert tree.latest_common_time('map', 'base_link') == 11_000_000_000
    assert tree.latest_common_time('map', laser) == 11_000_000_000  # its static edge aside
    assert tree.latest_common_time('base_link', laser) == 0  # nothing moves between them
    assert tree.covers('map', laser, 10_200_000_000)
    assert not tree.covers('map', laser, 11_200_000_000)  # tf2: extrapolation into the future
    assert not tree.covers('map', 'base_link', 9_000_000_000)  # ... and into the past
    assert tree.covers('base_link', laser, 1)
    assert tree.latest_common_time('map', 'elsewhere') is None
