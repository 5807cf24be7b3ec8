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
The control plane as ROS services and actions (docs/ros-api.md, "Control plane").

Each callback is a coroutine run by the rclpy executor. Its HTTP work runs on the asyncio
thread and comes back through :func:`to_executor`, bounded by ``request_timeout_s``, so no
executor thread ever blocks. Every failure becomes ``success: false`` with the API's error
code (or ``timeout`` / ``unavailable``); nothing raises out of a callback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, TypeVar
import uuid

from builtin_interfaces.msg import Time
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.executors import Executor
from rclpy.node import Node
from roboflare_interfaces import action, msg, srv

from .api_client import ApiClient
from .resources import (
    ApiError, CANCELLED, Config, CONFIG_DEPLOYMENT, CONFLICT, Deployment, DeploymentKind, FAILED,
    INTERNAL_SERVER_ERROR, Release, RELEASE_DEPLOYMENT, Robot, SUCCEEDED, TIMEOUT, UNAVAILABLE,
)
from ..common.asyncio_thread import AsyncioThread, to_executor

T = TypeVar('T')
_log = logging.getLogger(__name__)


def is_transient(error: ApiError) -> bool:
    """Return True for errors that polling again may get past (the link, not the request)."""
    return (error.code in (TIMEOUT, UNAVAILABLE, INTERNAL_SERVER_ERROR)
            or error.status == 429)


def time_msg(stamp: Tuple[int, int]) -> Time:
    return Time(sec=stamp[0], nanosec=stamp[1])


def robot_msg(robot: Robot) -> msg.Robot:
    return msg.Robot(id=robot.id, name=robot.name, status=robot.status,
                     last_seen_at=time_msg(robot.last_seen_at))


def release_msg(release: Release) -> msg.Release:
    return msg.Release(id=release.id, name=release.name, version=release.version,
                       created_at=time_msg(release.created_at))


def config_msg(config: Config) -> msg.Config:
    return msg.Config(id=config.id, name=config.name, version=config.version,
                      content=config.content, content_type=config.content_type,
                      created_at=time_msg(config.created_at))


def robot_states(deployment: Deployment) -> list:
    return [msg.RobotDeploymentState(robot_id=r.robot_id, status=r.status, message=r.message)
            for r in deployment.robots]


def deployment_msg(deployment: Deployment) -> Any:
    """Return a Deployment or ConfigDeployment message, after the deployment's kind."""
    if deployment.kind is CONFIG_DEPLOYMENT:
        out: Any = msg.ConfigDeployment(config_id=deployment.subject_id)
    else:
        out = msg.Deployment(release_id=deployment.subject_id)
    out.id = deployment.id
    out.robot_ids = list(deployment.robot_ids)
    out.status = deployment.status
    out.progress = float(deployment.progress)
    out.message = deployment.message
    out.robots = robot_states(deployment)
    out.created_at = time_msg(deployment.created_at)
    out.updated_at = time_msg(deployment.updated_at)
    return out


class ControlPlane:
    """The eight services and the two deploy actions of one bridge node."""

    def __init__(self, node: Node, loop: AsyncioThread, api: ApiClient,
                 request_timeout_s: float, poll_interval_s: float) -> None:
        self._node = node
        self._loop = loop
        self._api = api
        self._timeout = request_timeout_s
        self._poll = poll_interval_s
        self._wakeups: Dict[bytes, asyncio.Event] = {}
        self.calls = 0
        self.failures = 0
        services = (
            (srv.ListRobots, 'list_robots', self._list_robots),
            (srv.ListReleases, 'list_releases', self._list_releases),
            (srv.ListDeployments, 'list_deployments', self._list_deployments),
            (srv.GetDeployment, 'get_deployment', self._get_deployment),
            (srv.CancelDeployment, 'cancel_deployment', self._cancel_deployment),
            (srv.ListConfigs, 'list_configs', self._list_configs),
            (srv.GetConfig, 'get_config', self._get_config),
            (srv.ListConfigDeployments, 'list_config_deployments',
             self._list_config_deployments),
        )
        self._services = [node.create_service(t, f'~/{name}', cb) for t, name, cb in services]
        self._actions = [
            ActionServer(node, action.Deploy, '~/deploy', self._deploy_executor(
                RELEASE_DEPLOYMENT, 'release_id', action.Deploy),
                goal_callback=self._accept_goal, cancel_callback=self._accept_cancel),
            ActionServer(node, action.DeployConfig, '~/deploy_config', self._deploy_executor(
                CONFIG_DEPLOYMENT, 'config_id', action.DeployConfig),
                goal_callback=self._accept_goal, cancel_callback=self._accept_cancel),
        ]

    def destroy(self) -> None:
        for server in self._actions:
            server.destroy()
        for service in self._services:
            self._node.destroy_service(service)

    # -- the hand-off ---------------------------------------------------------------------

    @property
    def _executor(self) -> Executor:
        executor = self._node.executor
        assert executor is not None, 'callbacks run on the node executor, which is set'
        return executor

    async def _call(self, request: Callable[[ApiClient], Awaitable[T]]
                    ) -> Tuple[Optional[T], Optional[ApiError]]:
        """Run one API call on the asyncio thread; return (value, None) or (None, error)."""
        self.calls += 1

        async def bounded() -> T:
            try:
                return await asyncio.wait_for(request(self._api), self._timeout)
            except asyncio.TimeoutError:
                raise ApiError(TIMEOUT, f'no answer within request_timeout_s '
                                        f'({self._timeout:g}s)', 0, self._api.org_id) from None

        try:
            value = await to_executor(self._executor, self._loop.submit(bounded()))
            return value, None
        except ApiError as error:
            self.failures += 1
            return None, error
        except Exception as exc:  # noqa: BLE001 - a callback must answer, not raise
            self.failures += 1
            _log.exception('control-plane call failed')
            return None, ApiError(INTERNAL_SERVER_ERROR, f'bridge error: {type(exc).__name__}')

    async def _answer(self, response: Any, request: Callable[[ApiClient], Awaitable[T]]
                      ) -> Optional[T]:
        value, error = await self._call(request)
        response.success = error is None
        if error is not None:
            response.error_code, response.error_message = error.code, error.message
        return value

    # -- services -------------------------------------------------------------------------

    async def _list_robots(self, request: Any, response: Any) -> Any:
        robots = await self._answer(response, lambda api: api.list_robots())
        response.robots = [robot_msg(r) for r in robots or ()]
        return response

    async def _list_releases(self, request: Any, response: Any) -> Any:
        releases = await self._answer(response, lambda api: api.list_releases())
        response.releases = [release_msg(r) for r in releases or ()]
        return response

    async def _list_deployments(self, request: Any, response: Any) -> Any:
        deployments = await self._answer(response, lambda api: api.list_deployments(
            RELEASE_DEPLOYMENT, request.robot_id, request.status))
        response.deployments = [deployment_msg(d) for d in deployments or ()]
        return response

    async def _get_deployment(self, request: Any, response: Any) -> Any:
        deployment = await self._answer(response, lambda api: api.get_deployment(request.id))
        if deployment is not None:
            response.deployment = deployment_msg(deployment)
        return response

    async def _cancel_deployment(self, request: Any, response: Any) -> Any:
        deployment = await self._answer(response,
                                        lambda api: api.cancel_deployment(request.id))
        if deployment is not None:
            response.deployment = deployment_msg(deployment)
        return response

    async def _list_configs(self, request: Any, response: Any) -> Any:
        configs = await self._answer(response, lambda api: api.list_configs())
        response.configs = [config_msg(c) for c in configs or ()]
        return response

    async def _get_config(self, request: Any, response: Any) -> Any:
        config = await self._answer(response, lambda api: api.get_config(request.id))
        if config is not None:
            response.config = config_msg(config)
        return response

    async def _list_config_deployments(self, request: Any, response: Any) -> Any:
        deployments = await self._answer(response, lambda api: api.list_config_deployments())
        response.deployments = [deployment_msg(d) for d in deployments or ()]
        return response

    # -- actions --------------------------------------------------------------------------

    def _accept_goal(self, goal_request: Any) -> GoalResponse:
        return GoalResponse.ACCEPT

    def _accept_cancel(self, goal_handle: ServerGoalHandle) -> CancelResponse:
        wakeup = self._wakeups.get(bytes(goal_handle.goal_id.uuid))
        if wakeup is not None:  # end the poll wait now instead of at the next interval
            self._loop.call_soon(wakeup.set)
        return CancelResponse.ACCEPT

    def _deploy_executor(self, kind: DeploymentKind, subject_field: str,
                         action_type: Any) -> Callable[[ServerGoalHandle], Awaitable[Any]]:
        async def execute(goal_handle: ServerGoalHandle) -> Any:
            goal_id = bytes(goal_handle.goal_id.uuid)
            self._wakeups[goal_id] = asyncio.Event()  # set and awaited on the loop only
            try:
                return await self._follow_deployment(goal_handle, kind, subject_field,
                                                     action_type)
            finally:
                del self._wakeups[goal_id]
        return execute

    async def _follow_deployment(self, goal_handle: ServerGoalHandle, kind: DeploymentKind,
                                 subject_field: str, action_type: Any) -> Any:
        goal = goal_handle.request
        goal_id = bytes(goal_handle.goal_id.uuid)
        result = action_type.Result()
        # The goal's UUID is the Idempotency-Key: a resent goal (after a restart, say)
        # attaches to the deployment it created instead of creating another.
        key = str(uuid.UUID(bytes=goal_id))
        deployment, error = await self._call(lambda api: api.create_deployment(
            getattr(goal, subject_field), list(goal.robot_ids), kind, idempotency_key=key))
        if error is not None:
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
            return self._fill(result, False, error.code, error.message)
        assert deployment is not None  # no error: the deployment
        last_feedback = None
        while True:
            result.deployment = deployment_msg(deployment)
            feedback = action_type.Feedback(
                deployment_id=deployment.id, status=deployment.status,
                progress=float(deployment.progress), robots=robot_states(deployment))
            if feedback != last_feedback:
                goal_handle.publish_feedback(feedback)
                last_feedback = feedback
            if deployment.terminal:
                return self._finish(goal_handle, result, deployment)
            if goal_handle.is_cancel_requested:
                return await self._cancel_goal(goal_handle, result, deployment)
            await self._wait_poll(goal_id)
            deployment_id = deployment.id
            polled, error = await self._call(lambda api: api.get_deployment(deployment_id, kind))
            if error is not None and not is_transient(error):
                goal_handle.abort()
                return self._fill(result, False, error.code, error.message)
            # A transient error leaves the deployment running upstream: poll again.
            deployment = polled or deployment

    async def _wait_poll(self, goal_id: bytes) -> None:
        wakeup = self._wakeups[goal_id]

        async def wait() -> None:
            try:
                await asyncio.wait_for(wakeup.wait(), self._poll)
            except asyncio.TimeoutError:
                pass
        await to_executor(self._executor, self._loop.submit(wait()))

    async def _cancel_goal(self, goal_handle: ServerGoalHandle, result: Any,
                           deployment: Deployment) -> Any:
        cancelled, error = await self._call(
            lambda api: api.cancel_deployment(deployment.id, deployment.kind))
        if error is not None and error.code == CONFLICT:
            # It became terminal meanwhile: report how it really ended.
            final, _ = await self._call(
                lambda api: api.get_deployment(deployment.id, deployment.kind))
            return self._finish(goal_handle, result, final or deployment)
        if error is not None:
            goal_handle.abort()
            return self._fill(result, False, error.code,
                              f'cancel requested but the upstream cancel failed: '
                              f'{error.message}')
        assert cancelled is not None  # no error: the cancelled deployment
        result.deployment = deployment_msg(cancelled)
        goal_handle.canceled()
        return self._fill(result, False, CANCELLED,
                          f'{deployment.kind.name} {deployment.id} cancelled upstream')

    def _finish(self, goal_handle: ServerGoalHandle, result: Any, deployment: Deployment) -> Any:
        result.deployment = deployment_msg(deployment)
        if deployment.status == SUCCEEDED:
            goal_handle.succeed()
            return self._fill(result, True, '', '')
        goal_handle.abort()
        reason = deployment.message or '; '.join(
            f'{r.robot_id}: {r.message}' for r in deployment.robots if r.status == FAILED)
        return self._fill(result, False, deployment.status,
                          f'{deployment.kind.name} {deployment.id} {deployment.status}'
                          + (f': {reason}' if reason else ''))

    @staticmethod
    def _fill(result: Any, success: bool, code: str, message: str) -> Any:
        result.success, result.error_code, result.error_message = success, code, message
        return result
