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
Start the Roboflare bridge.

    ros2 launch roboflare_bridge bridge.launch.py robots:="[rbt_0001, rbt_0002]" \
        token_file:=~/.config/roboflare/token

Arguments left empty keep the params file's values.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
import yaml

OVERRIDABLE = ('robots', 'base_url', 'token_file', 'forward_logs', 'robot_id')


def bridge_node(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name in
             OVERRIDABLE + ('params_file', 'namespace', 'log_level', 'respawn')}
    overrides = {}
    for name in OVERRIDABLE:
        if value[name] != '':
            # "[a, b]" -> a list, "true" -> a bool: the same YAML rules as the params file.
            parsed = yaml.safe_load(value[name])
            overrides[name] = os.path.expanduser(parsed) if name == 'token_file' else parsed
    return [Node(package='roboflare_bridge', executable='bridge', name='roboflare_bridge',
                 namespace=value['namespace'], output='screen',
                 parameters=[value['params_file'], overrides],
                 arguments=['--ros-args', '--log-level', value['log_level']],
                 respawn=value['respawn'].lower() == 'true', respawn_delay=2.0)]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory('roboflare_bridge'), 'config',
                                  'bridge.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameters file (see config/bridge.yaml)'),
        DeclareLaunchArgument('robots', default_value='',
                              description='robot ids to mirror, e.g. "[rbt_0001, rbt_0002]"'),
        DeclareLaunchArgument('base_url', default_value='',
                              description='Roboflare API base URL'),
        DeclareLaunchArgument('token_file', default_value='',
                              description='file holding the API token (never the token itself)'),
        DeclareLaunchArgument('forward_logs', default_value='',
                              description="forward this machine's /rosout as robot robot_id"),
        DeclareLaunchArgument('robot_id', default_value='',
                              description='the robot this bridge runs on (for forward_logs)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the bridge node'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='log level of the bridge node'),
        DeclareLaunchArgument('respawn', default_value='false',
                              description='restart the bridge if it exits'),
        OpaqueFunction(function=bridge_node),
    ])
