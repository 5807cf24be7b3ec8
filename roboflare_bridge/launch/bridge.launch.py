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
        token_file:=~/.config/roboflare/token [rviz:=true]

Every parameter is an argument of its name (``ros2 launch roboflare_bridge bridge.launch.py
--show-args`` lists them); those left empty keep the params file's values. ``rviz:=true``
also writes an rviz config for the robots (see ``rviz_config``) and starts rviz2 with it,
where it is installed.
"""

import os

from ament_index_python.packages import (
    get_package_prefix, get_package_share_directory, PackageNotFoundError,
)
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from roboflare_bridge.node.launch_arguments import (
    check_params_file, LOG_LEVELS, overrides, prepare_rviz, shards,
)
from roboflare_bridge.parameters import PARAMETERS


def arguments(context, *names):
    """Return the launch arguments' values: those named and every parameter's."""
    return {name: LaunchConfiguration(name).perform(context)
            for name in names + tuple(parameter.name for parameter in PARAMETERS)}


def bridge_nodes(context, *args, **kwargs):
    value = arguments(context, 'params_file', 'namespace', 'log_level', 'respawn', 'shards')
    respawn = value['respawn'].lower() == 'true'
    params_file, parameters = check_params_file(value['params_file']), overrides(value)
    actions = []
    for name, shard in shards(value['shards']):
        node = Node(package='roboflare_bridge', executable='bridge', name=name,
                    namespace=value['namespace'], output='screen',
                    parameters=[params_file, parameters, shard],
                    arguments=['--ros-args', '--log-level', value['log_level']],
                    respawn=respawn, respawn_delay=2.0)
        actions.append(node)
        if not respawn:
            actions.append(RegisterEventHandler(OnProcessExit(target_action=node,
                                                              on_exit=_fail_on_error_exit)))
    return actions


def rviz_viewer(context, *args, **kwargs):
    if LaunchConfiguration('rviz').perform(context).lower() not in ('true', '1', 'yes'):
        return []
    path, message = prepare_rviz(arguments(context),
                                 LaunchConfiguration('params_file').perform(context))
    actions = [LogInfo(msg=message)]
    if path is None:
        return actions
    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        return actions + [LogInfo(msg=f'rviz: rviz2 is not installed (apt install '
                                      f'ros-$ROS_DISTRO-rviz2); open {path} with it later')]
    return actions + [Node(package='rviz2', executable='rviz2', name='rviz2',
                           arguments=['-d', str(path)], output='screen')]


def _fail_on_error_exit(event, context):
    # ros2 launch exits non-zero only when something raises: a bridge that refused to
    # start (or died) must end the launch with an error, for scripts and systemd units.
    if event.returncode != 0 and not context.is_shutdown:
        raise RuntimeError(f'{event.process_name} exited with code {event.returncode}; its '
                           'messages above say why')


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory('roboflare_bridge'), 'config',
                                  'bridge.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameters file (see config/bridge.yaml)'),
        *(DeclareLaunchArgument(parameter.name, default_value='',
                                description=f'{parameter.spec.description} (empty: the '
                                            "params file's value)")
          for parameter in PARAMETERS),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the bridge node'),
        DeclareLaunchArgument('log_level', default_value='info', choices=list(LOG_LEVELS),
                              description='log level of the bridge node'),
        DeclareLaunchArgument('respawn', default_value='false',
                              description='restart the bridge if it exits'),
        DeclareLaunchArgument('rviz', default_value='false', choices=['true', 'false'],
                              description='write an rviz config for the robots and start '
                                          'rviz2 with it'),
        DeclareLaunchArgument('shards', default_value='1',
                              description='bridge processes sharing the robots (one control '
                                          'plane); see shard_count'),
        OpaqueFunction(function=bridge_nodes),
        OpaqueFunction(function=rviz_viewer),
    ])
