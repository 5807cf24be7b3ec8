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
"""Services and actions of a bridge process against the emulator, from real rclpy clients."""

import signal
import socket
import threading
import time
import uuid

from action_msgs.msg import GoalStatus
import pytest
from rclpy.action import ActionClient
from roboflare_dev.emulator.contract import RELEASE_DEPLOYMENT
from roboflare_dev.testing import BridgeProcess, EmulatorThread, wait_future
from roboflare_interfaces import action, srv
from unique_identifier_msgs.msg import UUID

TIMEOUT_S = 2.0


@pytest.fixture(scope='module')
def emulator():
    emu = EmulatorThread(robots=3, seed=7)
    yield emu
    emu.close()


@pytest.fixture(autouse=True)
def clean_faults(emulator):
    emulator.control('POST', '/_emulator/faults', {
        'latency_ms': 0, 'fail_next': 0, 'rate_limit_next': 0, 'error_rate': 0})
    timing = emulator.world.timing
    timing.pending_s, timing.duration_s, timing.fail_robot_ids = 0.1, 1.0, set()


@pytest.fixture(scope='module')
def bridge(emulator, tmp_path_factory):
    proc = BridgeProcess(tmp_path_factory.mktemp('bridge'), emulator.url, emulator.token,
                         {'request_timeout_s': TIMEOUT_S, 'deploy_poll_interval_s': 0.1})
    yield proc
    assert proc.stop() == 0, proc.log()
    assert emulator.token not in proc.log()


class Caller:
    """Typed service calls to one bridge, from the test's rclpy node."""

    def __init__(self, ros, bridge):
        self.ros, self.bridge, self.clients = ros, bridge, {}

    def __call__(self, service_type, name, timeout=10.0, **fields):
        client = self.clients.get(name)
        if client is None:
            client = self.ros.node.create_client(service_type, self.bridge.name(name))
            assert client.wait_for_service(timeout_sec=30), \
                f'{name} never appeared:\n{self.bridge.log()}'
            self.clients[name] = client
        return wait_future(client.call_async(service_type.Request(**fields)), timeout)


@pytest.fixture(scope='module')
def call(ros, bridge):
    return Caller(ros, bridge)


def test_list_robots_releases_and_configs(call):
    robots = call(srv.ListRobots, 'list_robots')
    assert robots.success and robots.error_code == '' and robots.error_message == ''
    assert [r.id for r in robots.robots] == ['rbt_0001', 'rbt_0002', 'rbt_0003']
    assert robots.robots[0].status == 'online' and robots.robots[0].last_seen_at.sec > 1.7e9
    releases = call(srv.ListReleases, 'list_releases')
    assert releases.success and {r.version for r in releases.releases} == {'1.4.0', '1.4.1'}
    configs = call(srv.ListConfigs, 'list_configs')
    assert configs.success and [c.id for c in configs.configs] == [
        'cfg_nav2_params', 'cfg_fleet_env']
    config = call(srv.GetConfig, 'get_config', id='cfg_nav2_params')
    assert config.success and 'controller_frequency' in config.config.content
    assert config.config.content_type == 'application/yaml'


def test_deployment_services(call, emulator):
    dep = emulator.world.create_deployment(
        RELEASE_DEPLOYMENT, {'release_id': 'rel_navstack_140', 'robot_ids': ['rbt_0003']})
    listed = call(srv.ListDeployments, 'list_deployments', robot_id='rbt_0003')
    assert listed.success and dep.id in [d.id for d in listed.deployments]
    assert all('rbt_0003' in d.robot_ids for d in listed.deployments)
    got = call(srv.GetDeployment, 'get_deployment', id=dep.id)
    assert got.success and got.deployment.release_id == 'rel_navstack_140'
    assert got.deployment.created_at.sec > 1.7e9
    cancelled = call(srv.CancelDeployment, 'cancel_deployment', id=dep.id)
    assert cancelled.success and cancelled.deployment.status == 'cancelled'
    again = call(srv.CancelDeployment, 'cancel_deployment', id=dep.id)
    assert (again.success, again.error_code) == (False, 'conflict')
    assert 'already cancelled' in again.error_message
    by_status = call(srv.ListDeployments, 'list_deployments', status='cancelled')
    assert dep.id in [d.id for d in by_status.deployments]
    assert all(d.status == 'cancelled' for d in by_status.deployments)


@pytest.mark.parametrize('fault,code', [
    ({'fail_next': 1, 'fail_status': 403}, 'forbidden'),
    ({'fail_next': 1, 'fail_status': 401}, 'unauthorized'),
    ({'fail_next': 1, 'fail_status': 422}, 'http_error'),
    ({'fail_next': 10, 'fail_status': 500}, 'internal_server_error'),
    ({'rate_limit_next': 10, 'retry_after_s': 60}, 'http_error'),
])
def test_api_errors_reach_the_caller(call, emulator, fault, code):
    emulator.control('POST', '/_emulator/faults', fault)
    response = call(srv.ListReleases, 'list_releases')
    assert (response.success, response.error_code) == (False, code)
    assert response.error_message and response.releases == []


def test_not_found_and_bad_request(call):
    missing = call(srv.GetDeployment, 'get_deployment', id='dep_missing')
    assert (missing.success, missing.error_code) == (False, 'not_found')
    config = call(srv.GetConfig, 'get_config', id='../robots')  # quoted: no route escape
    assert (config.success, config.error_code) == (False, 'not_found')
    bad = call(srv.ListDeployments, 'list_deployments', status='exploded')
    assert (bad.success, bad.error_code) == (False, 'bad_request')
    assert call(srv.ListConfigDeployments, 'list_config_deployments').success


def test_slow_api_answers_timeout_within_request_timeout(call, emulator):
    emulator.control('POST', '/_emulator/faults', {'latency_ms': 5000})
    started = time.monotonic()
    response = call(srv.ListRobots, 'list_robots')
    elapsed = time.monotonic() - started
    assert (response.success, response.error_code) == (False, 'timeout')
    assert elapsed < TIMEOUT_S + 1.0
    emulator.control('POST', '/_emulator/faults', {'latency_ms': 0})
    assert call(srv.ListRobots, 'list_robots').success  # the node is still healthy


def test_unreachable_api_is_unavailable_within_the_timeout(ros, tmp_path, emulator):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        dead_url = f'http://127.0.0.1:{sock.getsockname()[1]}'
    proc = BridgeProcess(tmp_path, dead_url, emulator.token, {'request_timeout_s': TIMEOUT_S})
    try:
        started = time.monotonic()
        response = Caller(ros, proc)(srv.ListRobots, 'list_robots')
        assert time.monotonic() - started < TIMEOUT_S + 5  # includes discovery
        assert (response.success, response.error_code) == (False, 'unavailable')
        assert '127.0.0.1' in response.error_message
    finally:
        assert proc.stop() == 0


class Goals:
    """Deploy / DeployConfig goals against one bridge, recording feedback."""

    def __init__(self, ros, bridge, action_type=action.Deploy, name='deploy'):
        self.ros = ros
        self.client = ros.on_executor(
            lambda: ActionClient(ros.node, action_type, bridge.name(name)))
        assert self.client.wait_for_server(timeout_sec=30), bridge.log()
        self.type = action_type

    def send(self, goal_uuid=None, timeout=10.0, accept_rejection=False, **fields):
        feedback = []
        got_feedback = threading.Event()

        def on_feedback(message):
            feedback.append(message.feedback)
            got_feedback.set()
        goal_uuid = goal_uuid or UUID(uuid=list(uuid.uuid4().bytes))
        handle = self.ros.request(lambda: self.client.send_goal_async(
            self.type.Goal(**fields), feedback_callback=on_feedback, goal_uuid=goal_uuid), timeout)
        assert handle.accepted or accept_rejection
        return handle, feedback, got_feedback

    def destroy(self):
        self.ros.destroy(self.client)


@pytest.fixture
def goals(ros, bridge):
    g = Goals(ros, bridge)
    yield g
    g.destroy()


def test_deploy_to_success_with_ordered_feedback(goals, emulator):
    handle, feedback, _ = goals.send(release_id='rel_navstack_141',
                                     robot_ids=['rbt_0001', 'rbt_0002'])
    result = goals.ros.request(handle.get_result_async, 20)
    assert result.status == GoalStatus.STATUS_SUCCEEDED, result.result.error_message
    final = result.result.deployment
    assert result.result.success and final.status == 'succeeded' and final.progress == 1.0
    assert [r.status for r in final.robots] == ['succeeded', 'succeeded']
    statuses = [f.status for f in feedback]
    assert statuses[0] == 'pending' and statuses[-1] == 'succeeded'
    order = {'pending': 0, 'in_progress': 1, 'succeeded': 2}
    assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
    progress = [f.progress for f in feedback]
    assert progress == sorted(progress) and len(feedback) >= 4
    assert {f.deployment_id for f in feedback} == {final.id}
    upstream = emulator.world.deployments[final.id]
    assert upstream.status == 'succeeded' and upstream.robot_ids == ['rbt_0001', 'rbt_0002']


def test_deploy_to_seeded_failure_aborts_with_the_reason(goals, emulator):
    emulator.world.timing.fail_robot_ids = {'rbt_0002'}
    handle, _, _ = goals.send(release_id='rel_navstack_141', robot_ids=['rbt_0001', 'rbt_0002'])
    result = goals.ros.request(handle.get_result_async, 20)
    assert result.status == GoalStatus.STATUS_ABORTED
    assert (result.result.success, result.result.error_code) == (False, 'failed')
    assert 'failed on 1 of 2 robots' in result.result.error_message
    states = {r.robot_id: r.status for r in result.result.deployment.robots}
    assert states == {'rbt_0001': 'succeeded', 'rbt_0002': 'failed'}


def test_deploy_of_unknown_release_aborts_with_not_found(goals):
    handle, _, _ = goals.send(release_id='rel_nope', robot_ids=['rbt_0001'])
    result = goals.ros.request(handle.get_result_async, 20)
    assert result.status == GoalStatus.STATUS_ABORTED
    assert (result.result.error_code, result.result.error_message) == (
        'not_found', 'release not found')


def test_cancel_mid_way_cancels_upstream(goals, emulator):
    emulator.world.timing.duration_s = 30
    handle, feedback, got_feedback = goals.send(release_id='rel_navstack_141',
                                                robot_ids=['rbt_0003'])
    assert got_feedback.wait(10)
    cancel = goals.ros.request(handle.cancel_goal_async, 10)
    assert len(cancel.goals_canceling) == 1
    result = goals.ros.request(handle.get_result_async, 10)
    assert result.status == GoalStatus.STATUS_CANCELED
    assert (result.result.success, result.result.error_code) == (False, 'cancelled')
    deployment_id = feedback[0].deployment_id
    assert result.result.deployment.id == deployment_id
    assert emulator.world.deployments[deployment_id].status == 'cancelled'


def test_three_concurrent_goals(goals, emulator):
    emulator.world.timing.duration_s = 1.5
    started = time.monotonic()
    sent = [goals.send(release_id='rel_navstack_141', robot_ids=[robot])
            for robot in ('rbt_0001', 'rbt_0002', 'rbt_0003')]
    results = [goals.ros.request(handle.get_result_async, 30) for handle, _, _ in sent]
    assert [r.status for r in results] == [GoalStatus.STATUS_SUCCEEDED] * 3
    assert len({r.result.deployment.id for r in results}) == 3
    # Run side by side, not one after the other (each alone takes >= 1.6 s).
    assert time.monotonic() - started < 1.6 * 3


def test_deploy_config_to_success(ros, bridge, emulator):
    goals = Goals(ros, bridge, action.DeployConfig, 'deploy_config')
    try:
        handle, feedback, _ = goals.send(config_id='cfg_fleet_env', robot_ids=['rbt_0002'])
        result = goals.ros.request(handle.get_result_async, 20)
    finally:
        goals.destroy()
    assert result.status == GoalStatus.STATUS_SUCCEEDED
    assert result.result.deployment.config_id == 'cfg_fleet_env'
    assert emulator.world.deployments[result.result.deployment.id].kind.path == \
        '/api/configs/deployments'


def test_goal_resent_with_same_uuid_after_restart_attaches_to_one_deployment(
        ros, emulator, tmp_path):
    emulator.world.timing.duration_s = 3
    proc = BridgeProcess(tmp_path, emulator.url, emulator.token,
                         {'deploy_poll_interval_s': 0.1})
    before = set(emulator.world.deployments)
    goal_uuid = UUID(uuid=list(uuid.uuid4().bytes))
    goals = Goals(ros, proc)
    try:
        # A new server can drop its first response while discovery completes (loaded CI
        # legs, once): resend the same UUID. A duplicate is rejected, which tells that the
        # first one arrived; the feedback then shows it running.
        feedback, got_feedback = [], threading.Event()
        for _ in range(5):
            try:
                _, feedback, got_feedback = goals.send(goal_uuid=goal_uuid, timeout=4,
                                                       accept_rejection=True,
                                                       release_id='rel_navstack_141',
                                                       robot_ids=['rbt_0001'])
                break
            except TimeoutError:
                continue
        assert got_feedback.wait(10)
        proc.kill()  # mid-goal, no goodbye
        goals.destroy()
        proc.start()
        goals = Goals(ros, proc)
        # DDS may still list the killed server until its lease ends, and a request sent to
        # it is lost: resend with the same UUID, as a robust client would.
        for _ in range(10):
            try:
                handle, _, _ = goals.send(goal_uuid=goal_uuid, timeout=3,
                                          release_id='rel_navstack_141',
                                          robot_ids=['rbt_0001'])
                break
            except TimeoutError:
                continue
        result = goals.ros.request(handle.get_result_async, 30)
    finally:
        goals.destroy()
        proc.stop(signal.SIGINT)
    created = set(emulator.world.deployments) - before
    assert len(created) == 1, created
    assert result.status == GoalStatus.STATUS_SUCCEEDED
    assert result.result.deployment.id == feedback[0].deployment_id == created.pop()


def test_bridge_stays_idle_while_a_goal_waits(goals, emulator, bridge):
    """A pending goal must not spin the executor (rclpy#1405): check the process's CPU."""
    emulator.world.timing.duration_s = 30
    handle, _, got_feedback = goals.send(release_id='rel_navstack_141', robot_ids=['rbt_0001'])
    assert got_feedback.wait(10)
    ticks = _cpu_ticks(bridge.proc.pid)
    started = time.monotonic()
    time.sleep(2.0)  # measuring CPU over a window, not waiting for an event
    used = (_cpu_ticks(bridge.proc.pid) - ticks) / 100 / (time.monotonic() - started)
    goals.ros.request(handle.cancel_goal_async, 10)
    goals.ros.request(handle.get_result_async, 10)
    assert used < 0.5, f'bridge used {used:.0%} of a core while waiting'


def _cpu_ticks(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])
