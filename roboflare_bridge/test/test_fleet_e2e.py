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
Fleets end to end: emulator and bridges over real sockets.

Robots join, leave, go offline and get renamed; the selection changes at run time; two
shards share the robots.
"""

import httpx
from nav_msgs.msg import Odometry
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorThread, wait_future, wait_until_true,
)
from roboflare_interfaces.msg import RobotArray
from roboflare_interfaces.srv import ListRobots
from sensor_msgs.msg import Imu
from tf2_msgs.msg import TFMessage

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     reliability=ReliabilityPolicy.RELIABLE)
LIGHT = {'camera': False, 'remote_logs': False, 'topics': ['/odom', '/tf', '/tf_static'],
         'robots_poll_interval_s': 0.5, 'diagnostics_period_s': 0.5}


def latest_status(ros, shard_index=0, predicate=lambda status: True, timeout=30):
    """Return the latest /roboflare/robots of a shard that satisfies predicate."""
    statuses = Collector()
    subscription = ros.node.create_subscription(RobotArray, '/roboflare/robots', statuses,
                                                LATCHED)
    try:
        found = statuses.wait_for(lambda got: any(
            s.shard_index == shard_index and predicate(s) for s in got), timeout,
            f'a /roboflare/robots of shard {shard_index} as expected')
    finally:
        ros.destroy(subscription)
    return [s for s in found if s.shard_index == shard_index and predicate(s)][-1]


def mirrored(status):
    return {robot.id: name for robot, name, running in
            zip(status.robots, status.ros_names, status.mirrored) if running}


def odometry_flows(ros, namespace, count=3, timeout=30):
    odometry = Collector()
    subscription = ros.node.create_subscription(Odometry, f'{namespace}/odom', odometry, 10)
    try:
        return odometry.count(count, timeout)
    finally:
        ros.destroy(subscription)


def set_parameters(ros, bridge, *parameters):
    client = ros.node.create_client(SetParameters, bridge.name('set_parameters'))
    try:
        assert client.wait_for_service(timeout_sec=20)
        request = SetParameters.Request(parameters=[p.to_parameter_msg() for p in parameters])
        return wait_future(client.call_async(request), 15).results
    finally:
        ros.destroy(client)


def test_robots_join_leave_go_offline_and_get_renamed_while_the_bridge_runs(ros, tmp_path):
    emulator = EmulatorThread(robots=3)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token,
                           {'robots': ['*'], 'deny_robots': ['robot-3'], **LIGHT})
    try:
        status = latest_status(ros, predicate=lambda s: len(mirrored(s)) == 2)
        assert mirrored(status) == {'rbt_0001': 'robot_1', 'rbt_0002': 'robot_2'}
        odometry_flows(ros, '/roboflare/robot_1')

        # A robot joins the org: mirrored at the next poll.
        emulator.control('POST', '/_emulator/robots', {})
        latest_status(ros, predicate=lambda s: 'rbt_0004' in mirrored(s))
        odometry_flows(ros, '/roboflare/robot_4')

        # A robot leaves: its topics and its static transforms go.
        emulator.control('DELETE', '/_emulator/robots/rbt_0001')
        latest_status(ros, predicate=lambda s: 'rbt_0001' not in mirrored(s))
        wait_until_true(lambda: not ros.node.get_publishers_info_by_topic(
            '/roboflare/robot_1/odom'), 15, "robot_1's publishers destroyed")
        statics = Collector()
        subscription = ros.node.create_subscription(TFMessage, '/tf_static', statics, LATCHED)
        try:
            [static] = statics.count(1, 15)
        finally:
            ros.destroy(subscription)
        frames = {t.child_frame_id for t in static.transforms}
        assert 'robot_4/laser' in frames and not any(f.startswith('robot_1/') for f in frames)

        # A robot goes offline: WARN with its last-seen time, and no stream hammers it.
        emulator.control('POST', '/_emulator/robots/rbt_0002', {'status': 'offline'})
        values = diagnostics_values(ros, 'robot robot_2', 30,
                                    lambda v: v['_message'].startswith('offline'))
        assert values['_level'] == b'\x01' and values['last_seen'].endswith('Z')
        handshakes = emulator.emulator.handshakes
        latest_status(ros, predicate=lambda s: 'rbt_0002' not in mirrored(s))
        fleet = diagnostics_values(ros, 'fleet', 15, lambda v: int(v['polls']) >= 4)
        assert emulator.emulator.handshakes - handshakes <= 1  # none while it is offline
        assert fleet['offline'] == '1' and int(fleet['removed']) >= 1
        emulator.control('POST', '/_emulator/robots/rbt_0002', {'status': 'online'})
        odometry_flows(ros, '/roboflare/robot_2')

        # Renamed into a collision: the smallest id keeps the ROS name, the other gets its id.
        emulator.control('POST', '/_emulator/robots/rbt_0004', {'name': 'Robot 2'})
        status = latest_status(ros, predicate=lambda s: mirrored(s).get('rbt_0004') ==
                               'robot_2_rbt_0004')
        assert mirrored(status)['rbt_0002'] == 'robot_2'
        odometry_flows(ros, '/roboflare/robot_2_rbt_0004')
        assert 'both named' in bridge.log()
    finally:
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_the_selection_changes_at_run_time_and_read_only_parameters_are_refused(
        ros, tmp_path):
    emulator = EmulatorThread(robots=3)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token,
                           {'robots': ['robot-1'], **LIGHT, 'robots_poll_interval_s': 60.0})
    try:
        latest_status(ros, predicate=lambda s: set(mirrored(s)) == {'rbt_0001'})
        # The poll interval is a minute: the change applies at once, not at the next poll.
        [result] = set_parameters(ros, bridge, Parameter('robots', Parameter.Type.STRING_ARRAY,
                                                         ['robot-2', 'rbt_0003']))
        assert result.successful, result.reason
        latest_status(ros, predicate=lambda s: set(mirrored(s)) == {'rbt_0002', 'rbt_0003'},
                      timeout=15)
        odometry_flows(ros, '/roboflare/robot_3')
        # What is mirrored changes too: the robots' mirrors are made again with /imu.
        [result] = set_parameters(ros, bridge, Parameter(
            'topics', Parameter.Type.STRING_ARRAY, ['/odom', '/imu', '/tf', '/tf_static']))
        assert result.successful, result.reason
        imu = Collector()
        subscription = ros.node.create_subscription(Imu, '/roboflare/robot_3/imu', imu, 10)
        try:
            assert imu.count(3, 30)[-1].header.frame_id == 'robot_3/imu_link'
        finally:
            ros.destroy(subscription)
        [read_only] = set_parameters(ros, bridge, Parameter(
            'namespace_format', Parameter.Type.STRING, '/elsewhere/{robot}'))
        assert not read_only.successful and 'read-only' in read_only.reason
        [invalid] = set_parameters(ros, bridge, Parameter(
            'robots_poll_interval_s', Parameter.Type.DOUBLE, -1.0))
        assert not invalid.successful and 'robots_poll_interval_s' in invalid.reason
    finally:
        assert bridge.stop() == 0, bridge.log()[-3000:]
        emulator.close()


def test_two_shards_mirror_every_robot_exactly_once_with_one_control_plane(ros, tmp_path):
    emulator = EmulatorThread(robots=6)
    shards = [BridgeProcess(tmp_path / str(i), emulator.url, emulator.token,
                            {'robots': ['*'], **LIGHT, 'shard_count': 2, 'shard_index': i})
              for i in range(2) if (tmp_path / str(i)).mkdir() is None]
    try:
        shares = [set(mirrored(latest_status(ros, i, lambda s: bool(mirrored(s)))))
                  for i in range(2)]
        assert shares[0] | shares[1] == {f'rbt_{i:04d}' for i in range(1, 7)}
        assert not shares[0] & shares[1]
        names = dict(ros.node.get_service_names_and_types())
        assert shards[0].name('list_robots') in names
        assert shards[1].name('list_robots') not in names  # one control plane
        client = ros.node.create_client(ListRobots, shards[0].name('list_robots'))
        assert client.wait_for_service(timeout_sec=20)
        assert len(wait_future(client.call_async(ListRobots.Request()), 15).robots) == 6
        ros.destroy(client)
    finally:
        for shard in shards:
            assert shard.stop() == 0, shard.log()[-3000:]
        emulator.close()


def test_the_bridge_checks_the_live_spec_and_absorbs_pagination_and_new_statuses(ros, tmp_path):
    # The control plane pages its lists, knows a robot status the bridge does not, and
    # serves a route fewer than the bridge uses: all of it reported, the fleet still whole.
    emulator = EmulatorThread(robots=5)
    emulator.control('POST', '/_emulator/pagination', {'page_size': 2})
    spec = httpx.get(emulator.url + '/openapi.json').json()
    spec['components']['schemas']['Robot']['properties']['status']['enum'].append('maintenance')
    del spec['paths']['/api/configs/{id}']
    emulator.control('POST', '/_emulator/openapi', spec)
    emulator.control('POST', '/_emulator/robots/rbt_0004', {'status': 'maintenance'})
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token, {'robots': ['*'], **LIGHT})
    try:
        status = latest_status(ros, predicate=lambda s: len(mirrored(s)) == 5)
        assert dict(zip([r.id for r in status.robots], [r.status for r in status.robots])
                    )['rbt_0004'] == 'maintenance'
        odometry_flows(ros, '/roboflare/robot_4')  # an unknown status is not "offline"
        contract = diagnostics_values(ros, 'contract', 30, lambda v: 'compatible' in v)
        lines = [value for key, value in contract.items() if key.startswith('difference')]
        assert contract['compatible'] == 'false'
        assert contract['_message'] == '1 differences the bridge cannot absorb'
        assert 'GET /api/configs/{id}: expected the route, found no such path' in lines
        assert any('also maintenance (kept as text)' in line for line in lines)
        assert sum('next_cursor' in line and 'followed' in line for line in lines) == 5
    finally:
        assert bridge.stop() == 0, bridge.log()[-2000:]
        emulator.close()
    assert bridge.log().count('API contract against') == 1  # logged once
