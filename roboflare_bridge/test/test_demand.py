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
"""Local demand: topics, cameras and logs flow from a robot only while something subscribes."""

import asyncio
import json

import pytest
import rclpy
from roboflare_bridge.mirror import demand as demand_module
from roboflare_bridge.mirror.camera import CameraMirror
from roboflare_bridge.mirror.demand import Demand, MATCHED_EVENTS
from roboflare_bridge.mirror.remote_logs import LogMirror
from roboflare_bridge.mirror.topic_qos import lean_publishers
from roboflare_bridge.mirror.topics import TopicMirror
from roboflare_dev.testing import fake_publishers, FakeStream, run_in_virtual_time
from sensor_msgs.msg import CompressedImage

LINGER_S = 0.2
LISTING = json.dumps({'op': 'topics', 'topics': [
    {'topic': '/odom', 'type': 'nav_msgs/msg/Odometry'},
    {'topic': '/scan', 'type': 'sensor_msgs/msg/LaserScan'},
    {'topic': '/tf', 'type': 'tf2_msgs/msg/TFMessage'},
    {'topic': '/map', 'type': 'nav_msgs/msg/OccupancyGrid'},  # latched
    {'topic': '/tf_static', 'type': 'tf2_msgs/msg/TFMessage'},  # latched
    {'topic': '/exotic', 'type': 'exotic_msgs/msg/Thing'}]})  # not installed here


async def settle() -> None:
    """Let the loop run what is due now (recounts handed over, sends scheduled)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_matched_events_are_what_this_rclpy_offers():
    assert MATCHED_EVENTS  # Jazzy and Kilted: no poll needed


def test_demand_starts_at_once_and_ends_only_after_lingering_with_nobody_back():
    async def scenario():
        changes = []
        demand = Demand(asyncio.get_running_loop(), LINGER_S, changes.append)
        factory, publishers = fake_publishers()
        demand.publisher(factory, CompressedImage, '/a', None)
        demand.publisher(factory, CompressedImage, '/b', None)
        await settle()
        assert changes == [] and not demand.wanted
        publishers['/b'].match(1)
        await settle()
        assert changes == [True]
        publishers['/b'].match(0)  # a display toggled off ...
        await asyncio.sleep(LINGER_S / 4)
        publishers['/a'].match(2)  # ... and another subscriber comes within the linger
        await asyncio.sleep(LINGER_S * 2)
        assert changes == [True]  # no thrash
        publishers['/a'].match(0)
        await asyncio.sleep(LINGER_S / 2)
        assert changes == [True]  # still lingering
        await asyncio.sleep(LINGER_S * 2)
        assert changes == [True, False] and not demand.wanted
        demand.stop()
    run_in_virtual_time(scenario())


def mirror_on_demand(factory):
    return TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory,
                       throttle_ms={'/scan': 200}, on_demand=True, linger_s=LINGER_S)


async def listed_mirror():
    """Return an on-demand mirror whose stream is up and has listed LISTING."""
    factory, publishers = fake_publishers()
    mirror = mirror_on_demand(factory)
    stream = FakeStream()
    await mirror.on_connect(stream)
    mirror.on_frame(LISTING)
    await settle()
    return mirror, stream, publishers


def test_every_listed_topic_is_advertised_at_once_and_only_latched_ones_stream():
    async def scenario():
        mirror, stream, publishers = await listed_mirror()
        mirror.stop()
        return stream.sent, publishers, mirror.stats
    sent, publishers, stats = run_in_virtual_time(scenario())
    assert set(publishers) == {'/roboflare/robot_1/odom', '/roboflare/robot_1/scan', '/tf',
                               '/roboflare/robot_1/map'}  # /tf_static: one for every robot
    assert sent == [{'op': 'list_topics'}, {'op': 'subscribe', 'topic': '/map'},
                    {'op': 'subscribe', 'topic': '/tf_static'}]
    assert (stats.subscribed, stats.listed) == (2, 5)


def test_a_topic_streams_while_subscribed_and_is_let_go_after_the_linger():
    async def scenario():
        factory, publishers = fake_publishers()
        watched = []
        mirror = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory,
                             throttle_ms={'/scan': 200}, on_demand=True, linger_s=LINGER_S,
                             on_watched=lambda: watched.append(mirror.watched()))
        stream = FakeStream()
        await mirror.on_connect(stream)
        mirror.on_frame(LISTING)
        await settle()
        stream.sent.clear()
        publishers['/roboflare/robot_1/scan'].match(1)
        await settle()
        subscribed = list(stream.sent)
        assert mirror.activity() == 'streaming 3 of 5 topics'
        # The stream drops and comes back: what is watched is subscribed again.
        mirror.on_disconnect(stream)
        await mirror.on_connect(stream)
        mirror.on_frame(LISTING)
        await settle()
        again = stream.sent[len(subscribed):]
        publishers['/roboflare/robot_1/scan'].match(0)
        await asyncio.sleep(LINGER_S * 3)
        released = stream.sent[len(subscribed) + len(again):]
        mirror.stop()
        return subscribed, again, released, watched, mirror.activity()
    subscribed, again, released, watched, activity = run_in_virtual_time(scenario())
    assert subscribed == [{'op': 'subscribe', 'topic': '/scan', 'throttle_ms': 200}]
    assert {'op': 'subscribe', 'topic': '/scan', 'throttle_ms': 200} in again
    assert released == [{'op': 'unsubscribe', 'topic': '/scan'}]
    assert watched == [True, False] and activity == 'streaming 2 of 5 topics'


def test_tf_streams_from_every_robot_while_tf_has_a_local_subscriber():
    async def scenario():
        factory, publishers = fake_publishers()
        streams = []
        for robot in ('robot_1', 'robot_2'):
            mirror = TopicMirror(robot, f'/roboflare/{robot}', f'{robot}/',
                                 lambda cls, topic, qos, **events: factory(
                                     cls, f'{robot}:{topic}', qos, **events),
                                 on_demand=True, linger_s=LINGER_S)
            stream = FakeStream()
            await mirror.on_connect(stream)
            mirror.on_frame(LISTING)
            streams.append(stream)
        await settle()
        for publisher in (publishers['robot_1:/tf'], publishers['robot_2:/tf']):
            publisher.match(1)  # rviz's one /tf subscription matches every robot's publisher
        await settle()
        return streams
    streams = run_in_virtual_time(scenario())
    assert all({'op': 'subscribe', 'topic': '/tf'} in stream.sent for stream in streams)


@pytest.mark.parametrize('kind', ['camera', 'logs'])
def test_a_camera_or_log_stream_is_gated_by_its_topics_subscribers(kind):
    async def scenario():
        factory, publishers = fake_publishers()
        if kind == 'camera':
            mirror = CameraMirror('robot_1', '/roboflare/robot_1', 'robot_1/camera', factory,
                                  lambda: (0, 0), None, 1 << 20, True, LINGER_S)
            topic = '/roboflare/robot_1/camera/image_raw/compressed'
        else:
            mirror = LogMirror('robot_1', '/roboflare/robot_1', factory, True, LINGER_S)
            topic = '/roboflare/robot_1/rosout'
        gate = mirror.stream_spec().gate
        await settle()
        states = [gate.is_open]
        publishers[topic].match(1)
        await settle()
        states.append(gate.is_open)
        publishers[topic].match(0)
        await asyncio.sleep(LINGER_S * 3)
        states.append(gate.is_open)
        mirror.stop()
        return states
    assert run_in_virtual_time(scenario()) == [False, True, False]


def test_without_demand_everything_streams_as_it_always_did():
    async def scenario():
        factory, publishers = fake_publishers()
        mirror = TopicMirror('robot_1', '/roboflare/robot_1', 'robot_1/', factory)
        stream = FakeStream()
        await mirror.on_connect(stream)
        mirror.on_frame(LISTING)
        await settle()
        camera = CameraMirror('robot_1', '/r', 'f', factory, lambda: (0, 0), None, 1 << 20)
        return stream.sent, publishers, camera.stream_spec().gate
    sent, publishers, gate = run_in_virtual_time(scenario())
    assert [op['topic'] for op in sent[1:]] == ['/odom', '/scan', '/tf', '/map', '/tf_static']
    assert set(publishers) == {'/r/camera/image_raw/compressed'}  # topics' on first message
    assert gate is None


def test_where_rclpy_has_no_matched_events_a_poll_finds_subscribers(monkeypatch):
    monkeypatch.setattr(demand_module, 'MATCHED_EVENTS', False)

    async def scenario():
        changes = []
        demand = Demand(asyncio.get_running_loop(), LINGER_S, changes.append)
        factory, publishers = fake_publishers()
        publisher = demand.publisher(factory, CompressedImage, '/a', None)
        assert publisher.event_callbacks is None
        await asyncio.sleep(demand_module.POLL_S * 2)
        publisher.subscribers = 1  # no event says so: only the counts do
        await asyncio.sleep(demand_module.POLL_S * 1.5)
        started = list(changes)
        publisher.subscribers = 0
        await asyncio.sleep(LINGER_S + demand_module.POLL_S * 1.5)
        demand.stop()
        return started, changes
    assert run_in_virtual_time(scenario()) == ([True], [True, False])


def test_a_subscription_made_while_the_stream_is_down_is_sent_once_it_is_back():
    async def scenario():
        mirror, stream, publishers = await listed_mirror()
        mirror.on_disconnect(stream)
        publishers['/roboflare/robot_1/odom'].match(1)  # while reconnecting
        await settle()
        stream.sent.clear()
        await mirror.on_connect(stream)
        mirror.on_frame(LISTING)
        await settle()
        mirror.stop()
        return stream.sent
    sent = run_in_virtual_time(scenario())
    assert {'op': 'subscribe', 'topic': '/odom'} in sent
    assert sent.index({'op': 'list_topics'}) == 0


def test_mirror_publishers_carry_one_event_handler_at_most():
    """Keep the fleet's publishers lean: rclpy's executor walks every handler at each wake."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('lean_publishers', context=context)
    try:
        create = lean_publishers(node.create_publisher)
        node.create_publisher(CompressedImage, 'plain', 1)
        defaults = len(list(node.waitables))  # what rclpy gives a publisher otherwise
        assert defaults >= 1
        create(CompressedImage, 'lean', 1)
        assert len(list(node.waitables)) == defaults  # none: the defaults only warn
        loop = asyncio.new_event_loop()
        Demand(loop, LINGER_S, print).publisher(create, CompressedImage, 'watched', 1)
        loop.close()
        assert len(list(node.waitables)) == defaults + (1 if MATCHED_EVENTS else 0)
    finally:
        node.destroy_node()
        context.try_shutdown()
