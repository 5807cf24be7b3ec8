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
rviz2 configurations for mirrored robots (``ros2 run roboflare_bridge rviz_config``).

One config shows the chosen robots together under the fleet frame: TF, and per robot its
RobotModel, Map, Odometry, LaserScan and camera displays. Displays follow each robot's
topics and their types, listed over its echo stream when the API is reachable (the standard
set otherwise), and subscribe with the QoS the bridge publishes them with (topic_qos), so
rviz gets the latched map and description however late it starts.

rviz's RobotModel finds link ``L`` at frame ``<TF Prefix>/L``: the TF Prefix is the robot's
frame prefix without its trailing slash, and the URDF is used as the robot sent it.
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
import logging
import os
from pathlib import Path
import sys
from typing import Any, Coroutine, Dict, List, Optional, Sequence, Tuple, TypeVar

from websockets.exceptions import ConnectionClosed, InvalidHandshake
import yaml

from ..common.globs import topic_selected
from ..control.api_client import ApiClient, ApiError
from ..control.resources import Robot
from ..fleet.selection import matches, ros_names
from ..mirror.capability import RemoteRobot
from ..mirror.topic_qos import IMAGE, QosRules, TopicQos
from ..parameters import BridgeConfig, build_config, ParameterError, ros_name
from ..transport.credentials import CredentialsError, resolve_credentials, Token
from ..transport.streams import websocket_url
from ..transport.websocket import websockets_connect
from ..transport.wire import (
    ECHO_STREAM, EchoTopics, FrameError, LIST_TOPICS_OP, parse_echo_frame,
)

_log = logging.getLogger(__name__)

Topics = List[Tuple[str, str]]  # (remote topic, type)
T = TypeVar('T')

# What a robot is assumed to have when its topics cannot be listed.
STANDARD_TOPICS: Topics = [('/robot_description', 'std_msgs/msg/String'),
                           ('/map', 'nav_msgs/msg/OccupancyGrid'),
                           ('/odom', 'nav_msgs/msg/Odometry'),
                           ('/scan', 'sensor_msgs/msg/LaserScan')]
DISPLAY_CLASSES = {'nav_msgs/msg/OccupancyGrid': 'Map', 'nav_msgs/msg/Odometry': 'Odometry',
                   'sensor_msgs/msg/LaserScan': 'LaserScan',
                   'sensor_msgs/msg/PointCloud2': 'PointCloud2'}
DESCRIPTION_TYPE = 'std_msgs/msg/String'
COLOURS = ('255; 85; 0', '0; 170; 255', '120; 220; 60', '230; 60; 200', '250; 210; 40',
           '140; 110; 255', '0; 210; 190', '255; 140; 140')


class RvizConfigError(ValueError):
    """The robots or settings asked for cannot make a config; the message says why."""


def rviz_tf_prefix(frame_prefix: str) -> str:
    """Return the RobotModel TF Prefix that yields ``<frame_prefix><link>`` frames."""
    # rviz_default_plugins' TFLinkUpdater joins prefix + "/" + link.
    if not frame_prefix:
        return ''
    if not frame_prefix.endswith('/') or len(frame_prefix) < 2:
        raise RvizConfigError(f'frame prefix {frame_prefix!r} does not end with "/": '
                              "rviz's RobotModel cannot place the robot's links")
    return frame_prefix[:-1]


def robot_model_frame(tf_prefix: str, link: str) -> str:
    """Return the frame rviz's RobotModel looks up for a URDF link."""
    return f'{tf_prefix}/{link}' if tf_prefix else link


def _topic(name: str, qos: TopicQos) -> Dict[str, Any]:
    return {'Value': name, 'Depth': qos.depth, 'History Policy': 'Keep Last',
            'Reliability Policy': 'Best Effort' if qos.reliability == 'best_effort'
            else 'Reliable',
            'Durability Policy': 'Transient Local' if qos.durability == 'transient_local'
            else 'Volatile'}


def robot_displays(robot: RemoteRobot, topics: Topics, config: BridgeConfig,
                   colour: str) -> List[Dict[str, Any]]:
    """Return the displays of one robot: one per topic rviz can show, then its camera."""
    rules = QosRules.of(config)
    displays: List[Dict[str, Any]] = []
    for remote, type_name in topics:
        if not topic_selected(remote, config.topics, config.deny_topics):
            continue
        local, qos = robot.namespace + remote, rules.for_topic(remote)
        label = f'{robot.ros_name} {remote.lstrip("/")}'
        if type_name == DESCRIPTION_TYPE and remote.endswith('robot_description'):
            displays.append({
                'Class': 'rviz_default_plugins/RobotModel', 'Name': f'{robot.ros_name} model',
                'Enabled': True, 'Description Source': 'Topic',
                'Description Topic': _topic(local, qos),
                'TF Prefix': rviz_tf_prefix(robot.frame_prefix), 'Alpha': 1,
                'Visual Enabled': True, 'Collision Enabled': False})
        elif DISPLAY_CLASSES.get(type_name) == 'Map':
            displays.append({
                'Class': 'rviz_default_plugins/Map', 'Name': label, 'Enabled': True,
                'Alpha': 0.6, 'Color Scheme': 'map', 'Draw Behind': True,
                'Topic': _topic(local, qos)})
        elif DISPLAY_CLASSES.get(type_name) == 'Odometry':
            displays.append({
                'Class': 'rviz_default_plugins/Odometry', 'Name': label, 'Enabled': True,
                'Keep': 20, 'Position Tolerance': 0.1, 'Angle Tolerance': 0.1,
                'Shape': {'Value': 'Arrow', 'Color': colour, 'Alpha': 1, 'Shaft Length': 0.5,
                          'Shaft Radius': 0.03, 'Head Length': 0.15, 'Head Radius': 0.08},
                'Covariance': {'Value': False}, 'Topic': _topic(local, qos)})
        elif DISPLAY_CLASSES.get(type_name) in ('LaserScan', 'PointCloud2'):
            displays.append({
                'Class': f'rviz_default_plugins/{DISPLAY_CLASSES[type_name]}', 'Name': label,
                'Enabled': True, 'Style': 'Points', 'Size (Pixels)': 3,
                'Color Transformer': 'FlatColor', 'Color': colour, 'Decay Time': 0,
                'Topic': _topic(local, qos)})
    if config.camera and config.decode_images:
        displays.append({
            'Class': 'rviz_default_plugins/Image', 'Name': f'{robot.ros_name} camera',
            'Enabled': True, 'Normalize Range': True,
            'Topic': _topic(robot.namespace + '/camera/image_raw', IMAGE)})
    return displays


def rviz_document(robots: Sequence[Tuple[RemoteRobot, Topics]],
                  config: BridgeConfig) -> Dict[str, Any]:
    """Return the rviz2 configuration (as YAML-ready data) for these robots."""
    displays: List[Dict[str, Any]] = [
        {'Class': 'rviz_default_plugins/Grid', 'Name': 'Grid', 'Enabled': True,
         'Reference Frame': '<Fixed Frame>', 'Cell Size': 1, 'Plane Cell Count': 12},
        {'Class': 'rviz_default_plugins/TF', 'Name': 'TF', 'Enabled': True,
         'Show Names': len(robots) <= 3, 'Show Axes': True, 'Show Arrows': False,
         'Marker Scale': 0.4, 'Update Interval': 0}]
    for index, (robot, topics) in enumerate(robots):
        displays += robot_displays(robot, topics, config, COLOURS[index % len(COLOURS)])
    fixed_frame = config.fleet_frame or (robots[0][0].frame_prefix + 'odom' if robots else 'map')
    return {
        'Panels': [{'Class': 'rviz_common/Displays', 'Name': 'Displays'},
                   {'Class': 'rviz_common/Views', 'Name': 'Views'}],
        'Visualization Manager': {
            'Class': '', 'Displays': displays,
            'Global Options': {'Fixed Frame': fixed_frame, 'Background Color': '48; 48; 48',
                               'Frame Rate': 30},
            'Tools': [{'Class': 'rviz_default_plugins/MoveCamera'},
                      {'Class': 'rviz_default_plugins/Select'},
                      {'Class': 'rviz_default_plugins/Measure'}],
            'Views': {'Current': {'Class': 'rviz_default_plugins/TopDownOrtho',
                                  'Name': 'Current View', 'Scale': 60, 'X': 0, 'Y': 0,
                                  'Target Frame': '<Fixed Frame>'},
                      'Saved': None}},
        'Window Geometry': {'Height': 900, 'Width': 1400}}


def render(document: Dict[str, Any], robots: Sequence[Tuple[RemoteRobot, Topics]],
           command: str) -> str:
    """Return the config file's text, with a header saying what it shows and how it was made."""
    names = ', '.join(f'{robot.name} ({robot.id})' if robot.name != robot.id else robot.id
                      for robot, _ in robots)
    header = (f'# rviz2 configuration for mirrored robots: {names}\n'
              f'# Made by: {command}\n'
              '# Open with: rviz2 -d <this file>\n')
    return header + yaml.safe_dump(document, sort_keys=False, width=100)


# -- resolving robots and their topics -----------------------------------------------------

def choose_robots(entries: Sequence[str], known: Sequence[Robot]) -> List[Robot]:
    """Return the known robots an entry names (id, name or glob over either), in order."""
    chosen: List[Robot] = []
    for entry in entries:
        found = [robot for robot in known if matches(entry, robot)]
        if not found:
            raise RvizConfigError(f'no robot of the org is {entry!r} (known: '
                                  f'{", ".join(r.name for r in known)[:300]})')
        chosen += [robot for robot in found if robot not in chosen]
    return chosen


async def list_topics(base_url: str, robot_id: str, token: Token,
                      timeout: float = 5.0) -> Optional[Topics]:
    """Return a robot's topics from its echo stream, or None if they cannot be listed."""
    url = f'{websocket_url(base_url, robot_id, ECHO_STREAM)}?token={token.reveal()}'
    try:
        async with websockets_connect(url, open_timeout=timeout, max_size=16 << 20) as ws:
            await ws.send(LIST_TOPICS_OP)
            while True:
                reply = parse_echo_frame(await asyncio.wait_for(ws.recv(), timeout))
                if isinstance(reply, EchoTopics):
                    return [(t['topic'], t['type']) for t in reply.topics]
    except (OSError, asyncio.TimeoutError, FrameError, InvalidHandshake,
            ConnectionClosed) as exc:
        _log.warning('%s: topics not listed (%s); assuming the standard ones', robot_id,
                     token.scrub(f'{type(exc).__name__}: {exc}')[:200])
        return None


async def resolve(entries: Sequence[str], config: BridgeConfig, offline: bool = False,
                  timeout_s: float = 5.0) -> List[Tuple[RemoteRobot, Topics]]:
    """Return the robots to show with their topics (offline: entries are robot names)."""
    if not offline:
        try:
            credentials = resolve_credentials(config.base_url, config.token_file)
        except CredentialsError as exc:
            _log.warning('%s: robots are taken as names, topics as the standard ones', exc)
            offline = True
    if offline:
        return [(RemoteRobot.named(entry, entry, ros_name(entry), config), STANDARD_TOPICS)
                for entry in entries]
    async with ApiClient(credentials, request_timeout_s=timeout_s, max_attempts=2) as api:
        try:
            known = await api.list_robots()
        except ApiError as exc:
            _log.warning('robots not listed (%s): they are taken as names', exc)
            return [(RemoteRobot.named(entry, entry, ros_name(entry), config), STANDARD_TOPICS)
                    for entry in entries]
    chosen = choose_robots(entries, known)
    names, _ = ros_names(known)  # as the bridge names them
    listings = await asyncio.gather(*(list_topics(credentials.base_url, robot.id,
                                                  credentials.token, timeout_s)
                                      for robot in chosen))
    return [(RemoteRobot.named(robot.id, robot.name, names[robot.id], config),
             topics or STANDARD_TOPICS) for robot, topics in zip(chosen, listings)]


def write_config(entries: Sequence[str], config: BridgeConfig, output: Optional[Path],
                 offline: bool = False) -> str:
    """Resolve the robots, make their config and write it (``None``: return it only)."""
    robots = _run(resolve(entries, config, offline))
    command = ' '.join(['ros2 run roboflare_bridge rviz_config --robots', *entries]
                       + (['--offline'] if offline else []))
    text = render(rviz_document(robots, config), robots, command)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    return text


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end, also from inside a running loop (launch's own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1, thread_name_prefix='rviz_config') as pool:
        return pool.submit(asyncio.run, coroutine).result()


def parameters_from_file(path: str) -> Dict[str, Any]:
    """Return the bridge's parameters in a ROS params file (``/**`` or the node's name)."""
    with open(path) as stream:
        document = yaml.safe_load(stream) or {}
    values: Dict[str, Any] = {}
    for key in ('/**', 'roboflare_bridge', '/roboflare_bridge'):
        section = document.get(key) if isinstance(document, dict) else None
        if isinstance(section, dict):
            values.update(section.get('ros__parameters') or {})
    return values


def main(argv: Optional[List[str]] = None) -> int:
    """Write an rviz2 config for the robots given (ids, names or globs)."""
    parser = argparse.ArgumentParser(prog='rviz_config', description=main.__doc__)
    parser.add_argument('--robots', nargs='+', required=True, metavar='ROBOT',
                        help='robot ids, names or globs over them')
    parser.add_argument('-o', '--output', type=Path, help='file to write (default: stdout)')
    parser.add_argument('--params-file', help="the bridge's parameters (frame prefixes, "
                        'namespaces, QoS, credentials); default: its defaults')
    parser.add_argument('--base-url', default='', help='Roboflare API base URL')
    parser.add_argument('--token-file', default='', help='file holding the API token')
    parser.add_argument('--offline', action='store_true',
                        help='do not ask the API: robots are names, topics the standard ones')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='rviz_config: %(message)s')
    try:
        values = parameters_from_file(args.params_file) if args.params_file else {}
        for name in ('base_url', 'token_file'):
            if getattr(args, name):
                values[name] = getattr(args, name)
        text = write_config(args.robots, build_config(values), args.output, args.offline)
    except (RvizConfigError, ParameterError, CredentialsError, OSError,
            yaml.YAMLError) as exc:
        print(f'rviz_config: {exc}', file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f'wrote {args.output}: rviz2 -d {os.fspath(args.output)}', file=sys.stderr)
    return 0


__all__ = ['RvizConfigError', 'STANDARD_TOPICS', 'choose_robots', 'main',
           'parameters_from_file', 'resolve', 'robot_displays', 'robot_model_frame',
           'rviz_document', 'rviz_tf_prefix', 'write_config']
