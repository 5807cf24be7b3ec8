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
"""The generated interfaces: importable, and usable between two processes over DDS."""

from pathlib import Path
import threading
import uuid

from action_msgs.msg import GoalStatus
import pytest
from rclpy.action import ActionClient
from roboflare_dev.testing import start_python, stop_process, wait_future
import roboflare_interfaces.action as actions
import roboflare_interfaces.msg as msgs
import roboflare_interfaces.srv as srvs
from unique_identifier_msgs.msg import UUID

MESSAGES = ['Robot', 'Release', 'Deployment', 'ConfigDeployment', 'RobotDeploymentState',
            'Config']
SERVICES = ['ListRobots', 'ListReleases', 'ListDeployments', 'GetDeployment',
            'CancelDeployment', 'ListConfigs', 'GetConfig', 'ListConfigDeployments']
ACTIONS = ['Deploy', 'DeployConfig']
PEER = Path(__file__).parent / 'peers' / 'interface_peer.py'


@pytest.mark.parametrize('name', MESSAGES)
def test_message_types_import_and_construct(name):
    cls = getattr(msgs, name)
    message = cls()
    assert cls.__name__ == name and message == cls()


@pytest.mark.parametrize('name', SERVICES)
def test_service_responses_carry_the_error_fields(name):
    response = getattr(srvs, name).Response(success=False, error_code='not_found',
                                            error_message='release not found')
    assert (response.success, response.error_code) == (False, 'not_found')


@pytest.mark.parametrize('name', ACTIONS)
def test_action_types_have_goal_result_feedback(name):
    action = getattr(actions, name)
    result = action.Result(success=True, error_code='')
    assert result.success and action.Feedback(progress=0.5).progress == 0.5
    assert action.Goal() is not None


def test_deployment_constants_match_contract_statuses():
    assert {msgs.Deployment.STATUS_PENDING, msgs.Deployment.STATUS_IN_PROGRESS,
            msgs.Deployment.STATUS_SUCCEEDED, msgs.Deployment.STATUS_FAILED,
            msgs.Deployment.STATUS_CANCELLED} == {
        'pending', 'in_progress', 'succeeded', 'failed', 'cancelled'}


@pytest.fixture
def peer(tmp_path, ros):
    ns = f'/peer_{uuid.uuid4().hex[:8]}'
    proc = start_python(PEER, '--ros-args', '-r', f'__ns:={ns}',
                        log_path=tmp_path / 'peer.log')
    yield ns
    # A CI leg beside another on 2 cores has seen this stop take over 5 s.
    stop_process(proc, timeout=20)
    assert proc.returncode in (0, -2), (tmp_path / 'peer.log').read_text()


def test_service_call_between_processes(ros, peer):
    client = ros.node.create_client(srvs.ListRobots, f'{peer}/list_robots')
    assert client.wait_for_service(timeout_sec=20), 'peer service never appeared'
    response = wait_future(client.call_async(srvs.ListRobots.Request()), 10)
    assert response.success
    assert [r.id for r in response.robots] == ['rbt_0', 'rbt_1', 'rbt_2']
    assert response.robots[0].last_seen_at.sec == 1_700_000_000
    ros.destroy(client)


def test_action_goal_feedback_result_and_cancel_between_processes(ros, peer):
    client = ros.on_executor(lambda: ActionClient(ros.node, actions.Deploy, f'{peer}/deploy'))
    assert client.wait_for_server(timeout_sec=20), 'peer action server never appeared'

    goal = actions.Deploy.Goal(release_id='rel_1', robot_ids=['rbt_a', 'rbt_b'])
    # A first request can be lost to discovery: wait_for_server sees the server's request
    # readers, but the server may not have matched this client's response reader yet (seen
    # on a CI leg beside another). Another goal, with an id and feedback of its own, then.
    for attempt in range(3):
        feedback = []
        goal_uuid = UUID(uuid=list(uuid.uuid4().bytes))
        try:
            handle = ros.request(lambda: client.send_goal_async(
                goal, feedback_callback=lambda m, got=feedback: got.append(m.feedback),
                goal_uuid=goal_uuid), 5)
            break
        except TimeoutError:
            if attempt == 2:
                raise
    assert handle.accepted and bytes(handle.goal_id.uuid) == bytes(goal_uuid.uuid)
    result = ros.request(handle.get_result_async, 20)
    assert result.status == GoalStatus.STATUS_SUCCEEDED
    assert result.result.success and result.result.deployment.release_id == 'rel_1'
    assert list(result.result.deployment.robot_ids) == ['rbt_a', 'rbt_b']
    progress = [f.progress for f in feedback]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert all([r.robot_id for r in f.robots] == ['rbt_a', 'rbt_b'] for f in feedback)

    first_feedback = threading.Event()
    handle = ros.request(lambda: client.send_goal_async(
        goal, feedback_callback=lambda _: first_feedback.set()), 10)
    assert first_feedback.wait(10), 'no feedback before cancel'
    cancel = ros.request(handle.cancel_goal_async, 10)
    assert len(cancel.goals_canceling) == 1
    result = ros.request(handle.get_result_async, 20)
    assert result.status == GoalStatus.STATUS_CANCELED
    assert result.result.error_code == 'cancelled'
    ros.destroy(client)
