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
On demand, end to end: what streams from each robot is what something local subscribes to.

Upstream traffic is judged where it happens: the emulator counts what it sends per robot
and stream, and lists each connection's subscriptions.
"""

import time

from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from roboflare_dev.testing import (
    BridgeProcess, Collector, EmulatorThread, wait_future, wait_until_true,
)
from roboflare_interfaces.msg import RobotArray
from sensor_msgs.msg import CompressedImage
from tf2_msgs.msg import TFMessage

from test_fleet_e2e import latest_status, LATCHED

LINGER_S = 0.5
LATCHED_TOPICS = {'/map', '/robot_description', '/tf_static'}


def stats(emulator):
    return emulator.control('GET', '/_emulator/stats')


def subscriptions(emulator, robot_id):
    """What a robot's echo stream sends now: its connection's subscriptions."""
    return set(stats(emulator)['streams'].get(f'{robot_id}/ros/topics/echo', {}).get(
        'subscriptions', ()))


def connected(emulator, robot_id, stream):
    return f'{robot_id}/{stream}' in stats(emulator)['streams']


def sent(emulator, robot_id, stream):
    return stats(emulator)['sent_bytes'].get(robot_id, {}).get(stream, 0)


def until(condition, what, timeout=20):
    wait_until_true(condition, timeout, what)  # the emulator's state, polled with a deadline


def test_only_what_is_watched_streams_and_stops_after_the_linger(ros, tmp_path):
    emulator = EmulatorThread(robots=2, camera_fps=10, camera_size=(160, 120))
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'on_demand_linger_s': LINGER_S, 'diagnostics_period_s': 0.5})
    subscriptions_made = []
    try:
        # Nothing local subscribes: every listed topic is advertised, only latched ones
        # stream, and neither camera nor logs connect.
        until(lambda: subscriptions(emulator, 'rbt_0002') == LATCHED_TOPICS, 'latched only')
        until(lambda: '/roboflare/robot_2/odom' in dict(ros.node.get_topic_names_and_types()),
              'the odometry advertised before anyone subscribes')
        assert subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS
        assert not any(connected(emulator, robot, stream) for robot in ('rbt_0001', 'rbt_0002')
                       for stream in ('camera/ws', 'logs/ws'))
        idle = sent(emulator, 'rbt_0001', 'ros/topics/echo')

        # A subscriber starts the flow of that topic, of that robot only.
        odometry = Collector()
        started = time.monotonic()
        subscriptions_made.append(ros.node.create_subscription(
            Odometry, '/roboflare/robot_1/odom', odometry, 10))
        odometry.count(1, 10)
        first_message_s = time.monotonic() - started
        print(f'first odometry message {first_message_s:.2f} s after subscribing')
        assert first_message_s < 3.0
        assert subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS | {'/odom'}
        assert subscriptions(emulator, 'rbt_0002') == LATCHED_TOPICS
        assert sent(emulator, 'rbt_0001', 'ros/topics/echo') > idle

        # /tf: every robot's flows while it has a local subscriber.
        transforms = Collector()
        subscriptions_made.append(ros.node.create_subscription(TFMessage, '/tf', transforms,
                                                               100))
        transforms.wait_for(lambda got: {t.header.frame_id.split('/')[0] for m in got
                                         for t in m.transforms} >= {'robot_1', 'robot_2'}, 20)
        assert '/tf' in subscriptions(emulator, 'rbt_0002')

        # A camera connects while watched; /roboflare/robots says who is watched.
        images = Collector()
        subscriptions_made.append(ros.node.create_subscription(
            CompressedImage, '/roboflare/robot_2/camera/image_raw/compressed', images, 10))
        images.count(3, 20)
        assert connected(emulator, 'rbt_0002', 'camera/ws')
        assert not connected(emulator, 'rbt_0001', 'camera/ws')
        status = latest_status(ros, predicate=lambda s: list(s.watched) == [True, True])
        assert list(status.mirrored) == [True, True]

        # The last subscriber leaves: after the linger, nothing but latched topics streams.
        ros.destroy(*subscriptions_made)
        subscriptions_made.clear()
        until(lambda: subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS, 'odom let go')
        until(lambda: not connected(emulator, 'rbt_0002', 'camera/ws'), 'the camera closed')
        assert subscriptions(emulator, 'rbt_0002') == LATCHED_TOPICS
        quiet = sent(emulator, 'rbt_0001', 'ros/topics/echo')
        until(lambda: latest_status(ros).watched.tolist() == [False, False]
              if hasattr(latest_status(ros).watched, 'tolist')
              else list(latest_status(ros).watched) == [False, False], 'nobody watching')
        assert sent(emulator, 'rbt_0001', 'ros/topics/echo') - quiet < 4096  # in flight only
    finally:
        ros.destroy(*subscriptions_made)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_a_subscription_made_while_the_robot_is_offline_flows_once_it_is_back(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'camera': False, 'robots_poll_interval_s': 0.5,
        'on_demand_linger_s': LINGER_S})
    logs = Collector()
    subscription = None
    try:
        until(lambda: subscriptions(emulator, 'rbt_0001') == LATCHED_TOPICS, 'connected')
        emulator.control('POST', '/_emulator/robots/rbt_0001', {'status': 'offline'})
        latest_status(ros, predicate=lambda s: list(s.mirrored) == [False])
        subscription = ros.node.create_subscription(Log, '/roboflare/robot_1/rosout', logs, 10)
        emulator.control('POST', '/_emulator/robots/rbt_0001', {'status': 'online'})
        logs.count(1, 30)
        assert connected(emulator, 'rbt_0001', 'logs/ws')
    finally:
        if subscription is not None:
            ros.destroy(subscription)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_switching_demand_off_at_run_time_streams_every_selected_topic(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {
        'robots': ['*'], 'camera': False, 'remote_logs': False,
        'topics': ['/odom', '/imu', '/map']})
    client = ros.node.create_client(SetParameters, bridge.name('set_parameters'))
    try:
        until(lambda: subscriptions(emulator, 'rbt_0001') == {'/map'}, 'latched only')
        assert client.wait_for_service(timeout_sec=20)
        request = SetParameters.Request(parameters=[
            Parameter('mirror_on_demand', value=False).to_parameter_msg()])
        assert wait_future(client.call_async(request), 15).results[0].successful
        until(lambda: subscriptions(emulator, 'rbt_0001') == {'/odom', '/imu', '/map'},
              'every selected topic')
    finally:
        ros.destroy(client)
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


__all__ = ['RobotArray']  # the status's type, for readers of the assertions above
