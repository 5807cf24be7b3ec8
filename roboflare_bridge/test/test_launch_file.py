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
bridge.launch.py run by launch itself, as ``ros2 launch`` runs it (on a ROS install).

launch and launch_pytest are not on PyPI: in the PyPI venvs this module is skipped, and
test_launch.py checks the launch arguments' rules (roboflare_bridge.node.launch_arguments) there.
"""

import logging
import os
from pathlib import Path

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest', reason='launch and launch_pytest come with a ROS install, not PyPI')

import launch  # noqa: E402, I100 - after the skip above
from launch.actions import IncludeLaunchDescription, RegisterEventHandler, TimerAction  # noqa
from launch.event_handlers import OnProcessExit  # noqa: E402
from launch.events import Shutdown  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from roboflare_bridge.node.launch_arguments import rviz_config_path  # noqa: E402
from roboflare_dev.testing import Collector, EmulatorThread, wait_future  # noqa: E402
from roboflare_interfaces.srv import ListRobots  # noqa: E402
import yaml  # noqa: E402


def launch_file() -> Path:
    """Return the installed launch file (what ros2 launch finds), else the source one."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    try:
        share = Path(get_package_share_directory('roboflare_bridge'))
    except PackageNotFoundError:
        share = Path(__file__).resolve().parents[1]
    return share / 'launch' / 'bridge.launch.py'


def include(**arguments: str) -> IncludeLaunchDescription:
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(str(launch_file())),
                                    launch_arguments=list(arguments.items()))


@pytest.fixture(scope='module')
def emulator():
    emu = EmulatorThread(robots=2)
    yield emu
    emu.close()


@pytest.fixture(scope='module')
def token_file(emulator, tmp_path_factory):
    path = tmp_path_factory.mktemp('launch') / 'token'
    path.write_text(emulator.token + '\n')
    path.chmod(0o600)
    return path


@pytest.fixture(scope='module')
def ros_home(tmp_path_factory):
    home = tmp_path_factory.mktemp('ros_home')
    previous = os.environ.get('ROS_HOME')
    os.environ['ROS_HOME'] = str(home)  # where rviz:=true writes its config
    yield home
    if previous is None:
        del os.environ['ROS_HOME']
    else:
        os.environ['ROS_HOME'] = previous


@launch_pytest.fixture(scope='module')
def bridge_launch(emulator, token_file, ros_home):
    return launch.LaunchDescription([
        include(robots='rbt_0001', base_url=emulator.url, token_file=str(token_file),
                namespace='/launch_pytest', rviz='true'),
        launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=bridge_launch)
def test_the_launch_file_starts_a_working_bridge(ros):
    client = ros.node.create_client(ListRobots, '/launch_pytest/roboflare_bridge/list_robots')
    odom = Collector()
    subscription = ros.node.create_subscription(Odometry, '/roboflare/robot_1/odom', odom, 10)
    try:
        assert client.wait_for_service(timeout_sec=30)
        response = wait_future(client.call_async(ListRobots.Request()), 15)
        assert response.success and {r.id for r in response.robots} >= {'rbt_0001'}
        assert odom.count(3, 30)[-1].header.frame_id == 'robot_1/odom'
    finally:
        ros.destroy(client)
        ros.destroy(subscription)
    # rviz:=true wrote a config for the launched robot (rviz2 itself may not be installed).
    config = yaml.safe_load(rviz_config_path().read_text())
    topics = [d['Topic']['Value'] for d in config['Visualization Manager']['Displays']
              if 'Topic' in d]
    assert '/roboflare/robot_1/map' in topics and '/roboflare/robot_1/odom' in topics


class LaunchMessages(logging.Handler):
    """
    Collects what launch itself logs.

    Its loggers do not propagate and print to a stream of their own: neither caplog nor
    capfd sees them.
    """

    def __init__(self):
        super().__init__()
        self.text = ''

    def emit(self, record):
        self.text += record.getMessage() + '\n'


def run_launch(*entities, seconds=None):
    """Run a launch description as ros2 launch does; return its code and process exits."""
    exits = []
    description = [*entities, RegisterEventHandler(OnProcessExit(
        on_exit=lambda event, context: exits.append(event.returncode)))]
    if seconds is not None:  # as Ctrl-C would, after a while
        description.append(TimerAction(period=seconds, actions=[
            launch.actions.EmitEvent(event=Shutdown(reason='test over'))]))
    service = launch.LaunchService()
    service.include_launch_description(launch.LaunchDescription(description))
    return service.run(), exits


def run_launch_logged(*entities):
    """Run a launch description; return its code and what launch logged."""
    messages, logger = LaunchMessages(), logging.getLogger('launch')
    logger.addHandler(messages)
    try:
        code, _ = run_launch(*entities)
    finally:
        logger.removeHandler(messages)
    return code, messages.text


def test_a_shutdown_stops_the_bridge_cleanly(emulator, token_file):
    code, exits = run_launch(include(robots='rbt_0002', base_url=emulator.url,
                                     token_file=str(token_file), namespace='/launch_stop'),
                             seconds=8.0)
    assert (code, exits) == (0, [0])


@pytest.mark.parametrize('arguments,says', [
    ({'base_url': 'ftp://nowhere'}, 'exited with code 1'),
    ({'token_file': '/no/such/token'}, 'exited with code 1'),
    ({'params_file': '/no/such.yaml'}, 'no such file: /no/such.yaml'),
    ({'robots': '[rbt_0001'}, "'robots'"),
    ({'log_level': 'verbose'}, 'log_level'),
])
def test_a_refused_start_ends_the_launch_with_an_error(emulator, token_file, arguments, says):
    given = {'base_url': emulator.url, 'token_file': str(token_file), **arguments}
    code, logged = run_launch_logged(include(**given))
    assert code != 0 and says in logged, logged
