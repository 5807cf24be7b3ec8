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
Topic codec micro-benchmark: JSON echo frames -> serialised CDR -> rclpy publish.

Prints frames/s on one core for nav_msgs/Odometry and sensor_msgs/LaserScan (720 ranges)
for the mirror's path (orjson.loads, then cdr_writer.py's encoder, published as bytes) and the
codec's checking path (a message object), against two references on the same frames: the
floor (orjson.loads + constructing an empty message; "x floor" is decode/s over floor/s)
and a naive converter that introspects the message type on every frame (what
rosidl_runtime_py.set_message_fields does). With a subscriber in another process, rclpy's
publish costs far more (the rmw sends); that is measured on its own too (publish of the
serialised message only, the rmw's floor) and with the bridge's conversion in front of it.

Then one latched map, as the emulator sends it: a 2000 x 2000 nav_msgs/OccupancyGrid (4 M
cells, about 10 MB of JSON), with the milliseconds of its parse, its conversion and its
transient-local publish.

    python bench/codec_bench.py [--seconds S] [--json FILE]
"""

import argparse
import json
import math
import sys
import time

from harness import RemoteSubscriber, ros_environment, wait_for_subscriber
import orjson
import rclpy
from roboflare_bridge.codec.cdr_writer import CdrEncoder
from roboflare_bridge.codec.json_codec import Codec
from roboflare_bridge.codec.message_types import message_class
from roboflare_dev.emulator.sim import SimRobot


def naive_set_fields(message, values):
    """Set fields by introspecting the type on every call (rosidl_runtime_py's way)."""
    types = message.get_fields_and_field_types()
    for name, value in values.items():
        field_type = types[name]
        current = getattr(message, name)
        if isinstance(value, dict):
            naive_set_fields(current, value)
        elif isinstance(value, list) and field_type.startswith('sequence<') and \
                '/' in field_type:
            cls = type(current[0]) if current else message_class(
                field_type[len('sequence<'):-1].split(',')[0])
            items = []
            for item in value:
                child = cls()
                naive_set_fields(child, item)
                items.append(child)
            setattr(message, name, items)
        elif isinstance(value, list):
            setattr(message, name, [math.nan if v is None else v for v in value])
        else:
            setattr(message, name, math.nan if value is None else value)


def rates(fns, frames, seconds, rounds=10):
    """
    Return calls per second of each function over frames: the best of several rounds.

    Like timeit, the best round is the figure least disturbed by other load on a shared
    machine (this VM's neighbours move single rounds by up to 40 %). The functions take
    their rounds in turn, so that a busy spell slows each of them alike and the ratios
    between them (x floor, vs naive) hold: measured one after the other, the LaserScan
    ratio to its floor ranged 0.69-0.98 in four runs of the same code.
    """
    for fn in fns.values():
        for frame in frames[:100]:
            fn(frame)  # warm-up: plans and imports
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for label, fn in fns.items():
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds / rounds:
                for frame in frames:
                    fn(frame)
                count += len(frames)
            best[label] = max(best[label], count / (time.perf_counter() - started))
    return best


def bench_type(node, name, type_name, build, seconds):
    cls = message_class(type_name)
    robot = SimRobot(0, 'rbt_0001', 'robot-1')
    frames = [orjson.dumps({'op': 'message', 'topic': '/x', 'type': type_name,
                            'msg': build(robot, t * 0.05)}) for t in range(200)]
    codec, encoder = Codec('robot_1/'), CdrEncoder('robot_1/')
    publisher = node.create_publisher(cls, f'/bench/{name}', 10)
    subscribed = node.create_publisher(cls, f'/bench/{name}/subscribed', 10)
    wait_for_subscriber(subscribed)
    serialised = [encoder.encode(type_name, orjson.loads(frame)['msg']) for frame in frames]

    def bridge(frame):  # the mirror's path: JSON straight to CDR, published as bytes
        publisher.publish(encoder.encode(type_name, orjson.loads(frame)['msg']))

    def decode_only(frame):
        encoder.encode(type_name, orjson.loads(frame)['msg'])

    def codec_only(frame):  # the checking path, taken for what the encoder declines
        codec.decode(type_name, orjson.loads(frame)['msg'])

    def floor(frame):
        orjson.loads(frame)
        cls()

    def naive(frame):
        message = cls()
        naive_set_fields(message, orjson.loads(frame)['msg'])
        publisher.publish(message)

    def bridge_subscribed(frame):
        subscribed.publish(encoder.encode(type_name, orjson.loads(frame)['msg']))

    def publish_only_subscribed(data):
        subscribed.publish(data)

    results = {'type': type_name, 'frame_bytes': len(frames[0])}
    unsubscribed = rates({'bridge_decode_publish': bridge, 'bridge_decode_only': decode_only,
                          'codec_decode_only': codec_only, 'floor_loads_construct': floor,
                          'naive_introspection': naive}, frames, seconds)
    results.update((label, round(value)) for label, value in unsubscribed.items())
    results['decode_vs_floor'] = round(
        results['bridge_decode_only'] / results['floor_loads_construct'], 2)
    results['bridge_decode_publish_subscribed'] = round(
        rates({'': bridge_subscribed}, frames, seconds)[''])
    results['publish_only_subscribed'] = round(
        rates({'': publish_only_subscribed}, serialised, seconds)[''])
    return results


def bench_map(node, cells=2000, rounds=3):
    """Return the best-of-rounds milliseconds of parsing, converting and publishing a map."""
    from rclpy.qos import DurabilityPolicy, QoSProfile
    robot = SimRobot(0, 'rbt_0001', 'robot-1', map_cells=cells)
    frame = orjson.dumps({'op': 'message', 'topic': '/map', 'type': 'nav_msgs/msg/OccupancyGrid',
                          'msg': robot.occupancy_grid(0.0)})
    codec = Codec('robot_1/')
    publisher = node.create_publisher(message_class('nav_msgs/msg/OccupancyGrid'), '/bench/map',
                                      QoSProfile(depth=1,
                                                 durability=DurabilityPolicy.TRANSIENT_LOCAL))
    best = {'parse_ms': math.inf, 'convert_ms': math.inf, 'publish_ms': math.inf}
    for _ in range(rounds):
        started = time.perf_counter()
        msg = orjson.loads(frame)['msg']
        parsed = time.perf_counter()
        message = codec.decode('nav_msgs/msg/OccupancyGrid', msg)
        converted = time.perf_counter()
        publisher.publish(message)
        published = time.perf_counter()
        for key, seconds in (('parse_ms', parsed - started), ('convert_ms', converted - parsed),
                             ('publish_ms', published - converted)):
            best[key] = min(best[key], round(seconds * 1000, 1))
    return {'type': f'nav_msgs/msg/OccupancyGrid {cells}x{cells}', 'frame_bytes': len(frame),
            **best}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()
    ros_environment(73)
    rclpy.init()
    node = rclpy.create_node('codec_bench')
    subscriber = RemoteSubscriber([('/bench/odom/subscribed', 'nav_msgs/msg/Odometry'),
                                   ('/bench/scan720/subscribed', 'sensor_msgs/msg/LaserScan')])
    try:
        results = [
            bench_type(node, 'odom', 'nav_msgs/msg/Odometry', SimRobot.odometry, args.seconds),
            bench_type(node, 'scan720', 'sensor_msgs/msg/LaserScan',
                       lambda robot, t: dict(robot.laser_scan(t),
                                             ranges=robot.laser_scan(t)['ranges'] * 2),
                       args.seconds),
        ]
        big_map = bench_map(node)
    finally:
        subscriber.close()
    targets = {'nav_msgs/msg/Odometry': 20000, 'sensor_msgs/msg/LaserScan': 5000}
    print(f'{"type":26} {"decode+publish/s":>16} {"decode/s":>9} {"codec/s":>9} '
          f'{"floor/s":>9} {"x floor":>7} {"naive/s":>9} {"vs naive":>8} {"subscribed:":>12} '
          f'{"bridge/s":>9} {"rmw only/s":>10} {"target":>7}')
    for r in results:
        print(f'{r["type"]:26} {r["bridge_decode_publish"]:>16,} {r["bridge_decode_only"]:>9,} '
              f'{r["codec_decode_only"]:>9,} {r["floor_loads_construct"]:>9,} '
              f'{r["decode_vs_floor"]:>7.2f} {r["naive_introspection"]:>9,} '
              f'{r["bridge_decode_publish"] / r["naive_introspection"]:>8.2f} {"":>12} '
              f'{r["bridge_decode_publish_subscribed"]:>9,} '
              f'{r["publish_only_subscribed"]:>10,} {targets[r["type"]]:>7,}')
    print(f'{big_map["type"]}: {big_map["frame_bytes"] / 1e6:.1f} MB frame, parse '
          f'{big_map["parse_ms"]} ms, conversion {big_map["convert_ms"]} ms, publish '
          f'{big_map["publish_ms"]} ms (best of 3)')
    if args.json:
        with open(args.json, 'w') as out:
            json.dump({'types': results, 'map': big_map}, out, indent=2)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
