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
A separate process serving ListRobots and the Deploy action, for the interface test.

It checks that the generated types travel between processes over real DDS; the bridge's
own behaviour is tested elsewhere.
"""

import faulthandler
import signal

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future
from roboflare_interfaces.action import Deploy
from roboflare_interfaces.msg import Robot, RobotDeploymentState
from roboflare_interfaces.srv import ListRobots

FEEDBACK_STEPS = 5


class InterfacePeer(Node):

    def __init__(self) -> None:
        super().__init__('interface_peer')
        self.create_service(ListRobots, 'list_robots', self.list_robots)
        ActionServer(self, Deploy, 'deploy', self.execute,
                     goal_callback=lambda _: GoalResponse.ACCEPT,
                     cancel_callback=lambda _: CancelResponse.ACCEPT)

    def list_robots(self, request, response):
        response.success = True
        response.robots = [Robot(id=f'rbt_{i}', name=f'robot-{i}', status='online')
                           for i in range(3)]
        response.robots[0].last_seen_at.sec = 1_700_000_000
        return response

    async def execute(self, goal_handle):
        goal = goal_handle.request
        for step in range(1, FEEDBACK_STEPS + 1):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                return Deploy.Result(success=False, error_code='cancelled')
            feedback = Deploy.Feedback(deployment_id='dep_1', status='in_progress',
                                       progress=step / FEEDBACK_STEPS)
            feedback.robots = [RobotDeploymentState(robot_id=r, status='in_progress')
                               for r in goal.robot_ids]
            goal_handle.publish_feedback(feedback)
            await self.pause(0.2)  # a stand-in for work, not test synchronisation
        goal_handle.succeed()
        result = Deploy.Result(success=True)
        result.deployment.id = 'dep_1'
        result.deployment.release_id = goal.release_id
        result.deployment.robot_ids = list(goal.robot_ids)
        result.deployment.status = 'succeeded'
        result.deployment.progress = 1.0
        return result

    async def pause(self, seconds: float) -> None:
        # A coroutine's pause on one executor thread: the cancel request is served meanwhile.
        # No thread pool, whose idle worker has kept this process from exiting on SIGINT.
        elapsed = Future()
        timer = self.create_timer(seconds, lambda: elapsed.done() or elapsed.set_result(None))
        await elapsed
        self.destroy_timer(timer)


def main() -> None:
    # A stop that hangs (the test's SIGUSR1 before its SIGKILL) leaves the stacks in the log,
    # even while the main thread waits in rcl or DDS code.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init()
    node = InterfacePeer()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
