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
"""Launch file, shipped configuration, diagnostics and the demo."""

import ast
from pathlib import Path
import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from roboflare_bridge.node.launch_arguments import (
    check_params_file, LaunchArgumentError, LOG_LEVELS, overrides, prepare_rviz, shards,
)
from roboflare_bridge.parameters import BridgeConfig, build_config, PARAMETERS, render_yaml
from roboflare_bridge.tools.rviz_config import write_config
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, executable, ros_subprocess_env,
    wait_future, wait_until_true,
)
from roboflare_interfaces.srv import ListRobots
import yaml

PACKAGE = Path(__file__).resolve().parents[1]
CONFIG = PACKAGE / 'config' / 'bridge.yaml'
ROS_API_MINIMUM = {'base_url', 'token_file', 'robots', 'topics', 'deny_topics',
                   'namespace_format', 'frame_prefix_format', 'camera', 'decode_images',
                   'remote_logs', 'forward_logs', 'robot_id', 'log_min_level',
                   'log_ignore_nodes', 'spool_dir', 'spool_max_bytes', 'request_timeout_s',
                   'deploy_poll_interval_s'}


def shipped_parameters():
    return yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters']


def test_config_lists_every_parameter_with_its_default():
    # The file is the table's rendering (python -m roboflare_bridge.parameters --yaml).
    assert CONFIG.read_text() == render_yaml()
    values = shipped_parameters()
    assert list(values) == [p.name for p in PARAMETERS] and ROS_API_MINIMUM <= set(values)
    assert build_config(values) == BridgeConfig()
    for line in CONFIG.read_text().splitlines():
        if ':' in line and not line.strip().startswith(('#', '/**', 'ros__')):
            assert '#' in line, f'parameter line without a comment: {line}'


def test_launch_file_declares_the_common_arguments_and_one_per_parameter():
    source = (PACKAGE / 'launch' / 'bridge.launch.py').read_text()
    tree = ast.parse(source)
    declared = {call.args[0].value for call in ast.walk(tree)
                if isinstance(call, ast.Call) and getattr(call.func, 'id', '') ==
                'DeclareLaunchArgument' and isinstance(call.args[0], ast.Constant)}
    assert {'params_file', 'namespace', 'log_level', 'respawn', 'rviz', 'shards'} <= declared
    # and one per parameter, named as it is (the table's loop; test_launch_file shows them)
    assert 'DeclareLaunchArgument(parameter.name' in source and 'in PARAMETERS' in source


def test_rviz_config_shows_two_robots_under_the_fleet_frame():
    rviz = yaml.safe_load((PACKAGE / 'config' / 'remote_robots.rviz').read_text())
    manager = rviz['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == BridgeConfig().fleet_frame
    topics = {d['Topic']['Value'] for d in manager['Displays'] if 'Topic' in d}
    for robot in ('robot_1', 'robot_2'):
        assert {f'/roboflare/{robot}/odom', f'/roboflare/{robot}/scan'} <= topics
    assert '/roboflare/robot_1/camera/image_raw' in topics
    assert any(d['Class'] == 'rviz_default_plugins/TF' for d in manager['Displays'])


def test_bridge_starts_from_the_shipped_config_as_the_launch_file_does(ros, tmp_path):
    emulator = EmulatorThread(robots=2)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token,
                           {'robots': ['rbt_0001', 'rbt_0002']})
    # What the launch file passes: the params file, then the overrides.
    bridge.args[2:2] = ['--params-file', str(CONFIG)]
    bridge.stop()
    bridge.start()
    try:
        client = ros.node.create_client(ListRobots, bridge.name('list_robots'))
        assert client.wait_for_service(timeout_sec=30), bridge.log()
        assert wait_future(client.call_async(ListRobots.Request()), 10).success
        values = diagnostics_values(ros, 'control plane', 30,
                                    lambda v: v['org_id'] == 'org_emulated')
        assert values['base_url'] == emulator.url
        # Start-up's objects are kept out of the garbage collector's passes.
        assert int(values['gc_frozen_objects']) > 10_000
        robot = diagnostics_values(ros, 'robot robot_2', 30,
                                   lambda v: v.get('_level') == DiagnosticStatus.OK)
        assert robot['namespace'] == '/roboflare/robot_2'
        ros.destroy(client)
    finally:
        assert bridge.stop() == 0
        emulator.close()


def test_diagnostics_have_a_status_per_stream_and_no_secrets(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {'robots': ['rbt_0001']})
    try:
        collector = Collector()
        sub = ros.node.create_subscription(DiagnosticArray, '/diagnostics', collector, 10)
        arrays = collector.wait_for(
            lambda arrays: any('rbt_0001/camera/ws' in s.name for a in arrays
                               for s in a.status) and len(arrays) >= 3, 30)
        ros.destroy(sub)
    finally:
        bridge.stop()
        emulator.close()
    names = {s.name for s in arrays[-1].status}
    assert {'roboflare_bridge: control plane', 'roboflare_bridge: robot robot_1',
            'roboflare_bridge: rbt_0001/ros/topics/echo', 'roboflare_bridge: rbt_0001/logs/ws',
            'roboflare_bridge: rbt_0001/camera/ws'} <= names
    text = str([(s.name, s.message, [(kv.key, kv.value) for kv in s.values])
                for a in arrays for s in a.status])
    assert emulator.token not in text and 'token=' not in text
    stamps = [a.header.stamp.sec + a.header.stamp.nanosec * 1e-9 for a in arrays[-3:]]
    assert 0.5 < (stamps[-1] - stamps[0]) / 2 < 2.0  # about 1 Hz


@pytest.mark.parametrize('override,name', [
    ('log_min_level:=verbose', 'log_min_level'), ('request_timeout_s:=0', 'request_timeout_s'),
    ('robots:=5', 'robots'), ('namespace_format:=/x', 'namespace_format'),
    ('forward_logs:=true', 'robot_id')])
def test_wrong_parameter_value_is_refused_naming_it(tmp_path, override, name):
    token_file = tmp_path / 'token'
    token_file.write_text('rf_org_' + 'a' * 32)
    token_file.chmod(0o600)
    result = subprocess.run(
        [executable('bridge'), '--ros-args', '--params-file', str(CONFIG),
         '-p', f'token_file:={token_file}', '-p', 'base_url:=http://127.0.0.1:9',
         '-p', override], env=ros_subprocess_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert 'cannot start' in result.stderr + result.stdout
    assert f"'{name}'" in result.stderr + result.stdout


def test_demo_runs_and_shows_everything(tmp_path):
    env = ros_subprocess_env()
    if env.get('AMENT_PREFIX_PATH') == sys.prefix:
        del env['AMENT_PREFIX_PATH']  # as `make demo` runs it in a PyPI venv
    result = subprocess.run([sys.executable, '-m', 'roboflare_dev.demo', '--duration', '16',
                             '--output', str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    view = result.stdout.split('-' * 60)[-2]
    for expected in ('robot_1 (rbt_0001) under /roboflare/robot_1: streaming ', 'kB/s',
                     '/odom', 'fps at 640x480', 'acknowledged', 'SUCCEEDED'):
        assert expected in view, view
    png = (tmp_path / 'robot_1_camera.png').read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 10_000
    assert 'top-down view of the fleet' in view
    picture = (tmp_path / 'fleet_top_down.png').read_bytes()
    assert picture.startswith(b'\x89PNG') and len(picture) > 10_000


@pytest.mark.parametrize('arguments,expected', [
    ({'robots': 'rbt_0001'}, {'robots': ['rbt_0001']}),
    ({'robots': '[rbt_0001, robot-2]'}, {'robots': ['rbt_0001', 'robot-2']}),
    ({'robots': '*'}, {'robots': ['*']}),
    ({'robots': 'warehouse-*'}, {'robots': ['warehouse-*']}),
    ({'robots': "['*', rbt_0042]"}, {'robots': ['*', 'rbt_0042']}),
    ({'robots': '', 'forward_logs': 'true', 'robot_id': 'rbt_0009'},
     {'forward_logs': True, 'robot_id': 'rbt_0009'}),
    ({'token_file': '~/token'}, {'token_file': str(Path.home() / 'token')}),
])
def test_launch_arguments_become_parameter_overrides(arguments, expected):
    assert overrides(arguments) == expected


@pytest.mark.parametrize('arguments', [{'robots': '[rbt_0001'}, {'robots': '[]'},
                                       {'robots': '[[x]]'}, {'robots': '[{a: 1}]'}])
def test_a_malformed_robots_argument_is_refused_by_name(arguments):
    with pytest.raises(LaunchArgumentError, match="'robots'"):
        overrides(arguments)


def test_a_missing_params_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(LaunchArgumentError, match='no such file: /no/such.yaml'):
        check_params_file('/no/such.yaml')
    assert check_params_file(str(CONFIG)) == str(CONFIG)


def test_the_launch_file_refuses_a_bridge_that_fails_and_offers_log_level_choices():
    source = (PACKAGE / 'launch' / 'bridge.launch.py').read_text()
    assert 'choices=list(LOG_LEVELS)' in source and 'OnProcessExit' in source
    assert LOG_LEVELS == ('debug', 'info', 'warn', 'error', 'fatal')


def test_diagnostics_tell_a_rejected_token_and_refused_robots_apart(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    # A token of the right shape that the API does not know: every request gets a 401.
    bridge = BridgeProcess(tmp_path, emulator.url, 'rf_org_' + '0' * 32,
                           {'robots': ['rbt_0001'], 'diagnostics_period_s': 0.5})
    try:
        plane = diagnostics_values(ros, 'control plane', 30,
                                   lambda v: int(v['requests']) > 0)
        fleet = diagnostics_values(ros, 'fleet', 30, lambda v: v['_level'] == b'\x02')
    finally:
        assert bridge.stop() == 0
        emulator.close()
    assert plane['_level'] == b'\x02' and plane['_message'] == 'token rejected (HTTP 401)'
    assert plane['org_id'] == ''  # the 401 carried an org id header: not ours to report
    assert fleet['_message'].startswith("listing the org's robots failed: unauthorized")


def test_an_unknown_robot_is_reported_and_the_others_are_mirrored(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token,
                           {'robots': ['rbt_0001', 'rbt_9999'], 'diagnostics_period_s': 0.5})
    try:
        unknown = diagnostics_values(ros, 'robot rbt_9999', 30)
        known = diagnostics_values(ros, 'robot robot_1', 30)
        plane = diagnostics_values(ros, 'control plane', 30)
    finally:
        assert bridge.stop() == 0
        emulator.close()
    assert unknown['_level'] == b'\x01'
    assert unknown['_message'] == 'not mirrored: names no robot of the org (looked for at ' \
        'every poll)'
    assert known['namespace'] == '/roboflare/robot_1'
    assert plane['_level'] == b'\x00' and plane['org_id'] == 'org_emulated'


def test_start_up_warnings_go_through_the_node_logger(tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {'robots': []})
    bridge.stop()
    started_before = bridge.log().count('bridging')  # the log file is shared: count
    bridge.token_file.chmod(0o644)  # readable by others: a warning at start-up
    bridge.start()
    try:
        wait_until_true(lambda: bridge.log().count('bridging') > started_before, 30,
                        'the restarted bridge to start')
    finally:
        assert bridge.stop() == 0
        emulator.close()
    [line] = [line for line in bridge.log().splitlines() if 'readable by other' in line]
    assert line.startswith('[WARN]')
    assert 'roboflare_bridge]: roboflare_bridge.transport.credentials' in line


def test_rviz_true_writes_a_config_for_the_launched_robots(tmp_path, monkeypatch, emulator):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros_home'))
    token_file = tmp_path / 'token'
    token_file.write_text(emulator.token)
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'base_url': emulator.url, 'robots': ['rbt_0002'],
        'frame_prefix_format': 'fleet/{robot}/'}}}))
    path, message = prepare_rviz({'robots': '[rbt_0001, rbt_0002]',
                                  'token_file': str(token_file)}, str(params))
    assert path == tmp_path / 'ros_home' / 'roboflare_bridge' / 'fleet.rviz'
    assert 'rbt_0001, rbt_0002' in message
    displays = yaml.safe_load(path.read_text())['Visualization Manager']['Displays']
    models = [d for d in displays if d['Class'].endswith('RobotModel')]
    # The names come from the API, the prefix from the params file.
    assert [m['TF Prefix'] for m in models] == ['fleet/robot_1', 'fleet/robot_2']
    assert emulator.token not in path.read_text()

    path, message = prepare_rviz({}, str(tmp_path / 'params.yaml'))
    assert path is not None  # the params file's robot
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'robots': ['']}}}))
    assert prepare_rviz({}, str(params)) == (None, 'rviz: no robots to show; give the robots '
                                                   'argument')
    with pytest.raises(LaunchArgumentError, match="'namespace_format'"):
        params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
            'namespace_format': 'relative/{robot}'}}}))
        prepare_rviz({'robots': 'rbt_0001'}, str(params))


def test_shards_make_distinct_nodes_with_one_control_plane_and_one_log_forwarder():
    assert shards('') == shards('1') == [('roboflare_bridge', {})]
    three = shards('3')
    assert [name for name, _ in three] == ['roboflare_bridge', 'roboflare_bridge_shard_1',
                                           'roboflare_bridge_shard_2']
    assert [p['shard_index'] for _, p in three] == [0, 1, 2]
    assert all(p['shard_count'] == 3 for _, p in three)
    assert 'forward_logs' not in three[0][1] and three[2][1]['forward_logs'] is False
    for values in three:  # each shard's parameters are valid as the bridge checks them
        build_config({'forward_logs': True, 'robot_id': 'rbt_1', **values[1]})
    for text in ('0', 'two', '65'):
        with pytest.raises(LaunchArgumentError, match="'shards'"):
            shards(text)


def test_rviz_config_can_be_written_from_inside_a_running_event_loop(tmp_path, emulator):
    # launch calls the launch file's functions from its own asyncio loop.
    import asyncio
    config = build_config({'base_url': emulator.url, 'token_file': str(tmp_path / 'token')})
    (tmp_path / 'token').write_text(emulator.token)

    async def inside_a_loop():
        return write_config(['rbt_0001'], config, tmp_path / 'fleet.rviz')
    assert 'robot_1' in asyncio.run(inside_a_loop())
