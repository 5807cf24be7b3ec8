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
"""The simulated robots' world agrees with itself: map, scans, motion, TF and URDF."""

import asyncio
import json
import math
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from roboflare_bridge.transport.websocket import websockets_connect
from roboflare_bridge.transport.wire import EchoMessage, parse_echo_frame
from roboflare_dev.emulator.contract import parse_resize
from roboflare_dev.emulator.robot_shell import MAX_LINE, RobotShell
from roboflare_dev.emulator.sim import (
    FOOTPRINT_RADIUS, JOINTS, MAP_MARGIN, ROOM_HALF_SIZE, SimRobot,
)

ROBOTS = [SimRobot(i, f'rbt_{i + 1:04d}', f'robot-{i + 1}') for i in range(5)]


def grid_of(robot):
    message = robot.occupancy_grid(0.0)
    info = message['info']
    grid = np.array(message['data'], np.int8).reshape(info['height'], info['width'])
    return grid, info


def cell_index(info, x, y):
    origin = info['origin']['position']
    return (int((y - origin['y']) // info['resolution']),
            int((x - origin['x']) // info['resolution']))


def cell_value(grid, info, x, y):
    return grid[cell_index(info, x, y)]


def occupied_near(grid, info, x, y):
    row, col = cell_index(info, x, y)
    return (grid[row - 1:row + 2, col - 1:col + 2] == 100).any()  # a beam may clip a corner


def test_the_map_has_walls_floor_obstacles_and_unknown_space():
    grid, info = grid_of(ROBOTS[0])
    assert info['width'] == info['height'] == grid.shape[0]
    assert info['origin']['position']['x'] == -ROOM_HALF_SIZE - MAP_MARGIN
    assert cell_value(grid, info, 0.0, 2.5) == 0          # floor
    assert cell_value(grid, info, 5.03, 0.0) == 100       # east wall (floor from -5 to 5)
    assert cell_value(grid, info, -5.3, 0.0) == -1        # beyond the walls: never seen
    assert cell_value(grid, info, 0.48, 0.0) == 100       # the pillar's edge
    assert cell_value(grid, info, 0.0, 0.0) == -1         # inside the pillar: never seen
    assert set(np.unique(grid)) == {-1, 0, 100}


@pytest.mark.parametrize('robot', ROBOTS, ids=lambda r: r.name)
def test_each_robot_drives_on_free_floor_and_its_scan_ends_on_what_the_map_shows(robot):
    grid, info = grid_of(robot)
    for t in np.linspace(0.0, 2 * math.pi / robot.omega, 40):
        x, y, _ = robot.pose(t)
        for angle in np.linspace(0, 2 * math.pi, 16, endpoint=False):
            assert cell_value(grid, info, x + FOOTPRINT_RADIUS * math.cos(angle),
                              y + FOOTPRINT_RADIUS * math.sin(angle)) == 0
    t = 7.0
    scan = robot.laser_scan(t)
    x, y, yaw = robot.pose(t)
    lx, ly, _ = JOINTS[0].xyz
    ox = x + lx * math.cos(yaw) - ly * math.sin(yaw)
    oy = y + lx * math.sin(yaw) + ly * math.cos(yaw)
    hits = 0
    for i, r in enumerate(scan['ranges']):
        if r is None:
            continue
        beam = yaw + scan['angle_min'] + i * scan['angle_increment']
        # Half way the floor is free; where the beam ends, the map is occupied.
        half_way = cell_value(grid, info, ox + r / 2 * math.cos(beam),
                              oy + r / 2 * math.sin(beam))
        assert half_way == 0, (i, r)
        assert occupied_near(grid, info, ox + r * math.cos(beam), oy + r * math.sin(beam)), \
            (i, r)
        hits += 1
    assert hits > 300


def test_odometry_drifts_and_map_to_odom_puts_the_robot_back_where_it_is():
    robot = ROBOTS[2]
    t = 40.0
    transforms = {tf['child_frame_id']: tf for tf in robot.tf(t)['transforms']}
    correction = transforms['odom']['transform']['translation']
    odom = robot.odometry(t)['pose']['pose']['position']
    x, y, _ = robot.pose(t)
    assert transforms['odom']['header']['frame_id'] == 'map'
    assert (correction['x'], correction['y']) != (0.0, 0.0)
    assert odom['x'] + correction['x'] == pytest.approx(x)
    assert odom['y'] + correction['y'] == pytest.approx(y)
    assert transforms['base_link']['transform']['translation']['x'] == pytest.approx(odom['x'])


def test_the_urdf_links_are_the_tf_frames_under_base_link():
    robot = ROBOTS[0]
    urdf = ElementTree.fromstring(robot.robot_description(0.0)['data'])
    assert urdf.get('name') == 'robot-1'
    links = {link.get('name') for link in urdf.iter('link')}
    tf_children = {tf['child_frame_id'] for tf in robot.tf(1.0)['transforms']}
    static = robot.tf_static(1.0)['transforms']
    below_base = {tf['child_frame_id'] for tf in static} | (tf_children - {'odom', 'base_link'})
    assert links == below_base | {'base_link'}
    joints = {joint.find('child').get('link'): joint for joint in urdf.iter('joint')}
    for tf in static:
        origin = joints[tf['child_frame_id']].find('origin')
        xyz = [float(v) for v in origin.get('xyz').split()]
        translation = tf['transform']['translation']
        assert xyz == pytest.approx([translation['x'], translation['y'], translation['z']])
        assert joints[tf['child_frame_id']].get('type') == 'fixed'
    wheels = [j for j in urdf.iter('joint') if j.get('type') == 'continuous']
    assert sorted(j.find('child').get('link') for j in wheels) == ['left_wheel_link',
                                                                   'right_wheel_link']


def test_latched_topics_are_sent_once_on_every_subscribe(emulator):
    async def first_frames(count):
        base = emulator.url.replace('http://', 'ws://')
        async with websockets_connect(f'{base}/api/robots/rbt_0001/ros/topics/echo'
                                      f'?token={emulator.token}', max_size=16 << 20) as ws:
            frames = []
            for _ in range(count):
                await ws.send(json.dumps({'op': 'subscribe', 'topic': '/map'}))
                await ws.send(json.dumps({'op': 'subscribe', 'topic': '/robot_description'}))
                for _ in range(2):
                    frames.append(parse_echo_frame(await asyncio.wait_for(ws.recv(), 10)))
            await ws.send(json.dumps({'op': 'subscribe', 'topic': '/chatter'}))
            following = parse_echo_frame(await asyncio.wait_for(ws.recv(), 10))
            return frames, following
    frames, following = asyncio.run(first_frames(2))
    assert all(isinstance(f, EchoMessage) for f in frames)
    assert sorted(f.topic for f in frames) == ['/map', '/map', '/robot_description',
                                               '/robot_description']
    maps = [f.msg for f in frames if f.topic == '/map']
    assert maps[0] == maps[1]  # the same message, stamp included: published once
    assert following.topic == '/chatter'  # nothing more of the latched topics came


# -- the confined shell behind shell/ws ------------------------------------------------------

def test_the_confined_shell_has_a_line_discipline_and_a_few_commands():
    shell = RobotShell('robot-1')
    assert shell.prompt() == b'robot@robot-1:~$ '
    assert shell.feed(b'ech\x7fho hi') == b'ech\x08 \x08ho hi'  # echo, backspace
    assert shell.feed(b'\r') == b'\r\nhi\r\nrobot@robot-1:~$ '
    assert shell.feed(b'ls; cd logs; pwd\r').endswith(
        b'config.yaml\r\nlogs\r\n/home/robot/logs\r\nrobot@robot-1:~/logs$ ')
    assert b'No such file' in shell.feed(b'cat /etc/passwd\r')  # never the host's files
    assert b'command not found' in shell.feed(b'rm -rf /\r')
    assert shell.feed(b'typed\x03') == b'typed^C\r\nrobot@robot-1:~/logs$ '
    shell.resize(120, 40)
    assert b'40 120\r\n' in shell.feed(b'stty size\r')
    assert shell.feed(b'x' * (MAX_LINE + 10)).endswith(b'\x07')  # a bounded line
    shell.feed(b'\x03')
    assert shell.exit_status is None
    shell.feed(b'exit 3\recho never\r')
    assert shell.exit_status == 3


def test_control_d_on_an_empty_line_ends_the_shell_with_the_last_status():
    shell = RobotShell('r')
    shell.feed(b'ls /nowhere\r')
    shell.feed(b'partial\x04')  # not on an empty line: nothing
    assert shell.exit_status is None
    shell.feed(b'\x03\x04')
    assert shell.exit_status == 130  # ^C set the last status, as a shell does


def test_resize_frames_are_checked():
    assert parse_resize('{"type": "resize", "cols": 100, "rows": 30}') == (100, 30)
    for bad in ('{"type": "resize", "cols": 0, "rows": 30}', '{"type": "resize"}',
                '{"type": "resize", "cols": true, "rows": 3}', 'not json', '[1, 2]',
                '{"type": "resize", "cols": 100000, "rows": 30}'):
        assert parse_resize(bad) is None, bad
