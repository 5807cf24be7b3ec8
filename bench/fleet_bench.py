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
Fleet benchmark: every stream kind at 1, 10 and 50 robots, the bridge as its own process.

Each (kind, robots) cell starts a fresh emulator and bridge; this process is the local
subscriber (raw subscriptions, so it measures delivery, not its own deserialisation).
A cell has two phases:

1. latency, at nominal rates (topics at their simulated rates, about 100 messages/s per
   robot; cameras 30 fps at 640x480; logs 1,000 records/s): added latency p50/p99;
2. throughput, the emulator flat out (topic rates x1000 and cameras at 5,000 fps, both held
   back only by the socket; 200 fps per camera when decoding, about what the decoder takes;
   logs 20,000 records/s offered): messages/s and MB/s delivered, CPU seconds of the bridge
   per 1,000 messages.

Beside it, for topic echo and camera compressed, the floor: the CPU seconds per 1,000 of
the same messages for the least a bridge must do with each (parse the JSON frame, publish
the message already serialised to a subscriber in another process; harness), measured in
this process once the cell's processes are gone, and the bridge's multiple of it.

Peak RSS is the bridge's VmHWM over both phases. Latency is measured from: the emulator's
send stamp (topic echo: header.stamp, taken as the frame goes onto the loopback socket), the
bridge's receipt stamp (camera: header.stamp), the publication stamp (logs) to, respectively,
delivery here or the emulator storing the batch (it acknowledges at once). For log
forwarding "robots" is the number of /rosout publishing nodes (one process), since a bridge
forwards the logs of the robot it runs on.

With ``--shards 1,2`` each topic and camera cell runs once per shard count: N bridge
processes (``shard_count`` N) share the robots; CPU and peak RSS are their sums. With
``--restamp none,offset`` each runs once per ``restamp`` mode (what rewriting every
header's stamp costs).

    python bench/fleet_bench.py [--robots 1,10,50] [--kinds echo,compressed,decoded,logs]
                                [--shards 1,2] [--restamp none,offset] [--seconds S]
                                [--json FILE]
                                [--bridge-from OTHER_CHECKOUT/roboflare_bridge]
"""

from __future__ import annotations

import argparse
from bisect import bisect_left
from dataclasses import dataclass, field
import json
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness import (
    BridgeProcess, EmulatorProcess, floor_cpu_s_per_1000, percentile, proc_stat_cpu_seconds,
    robot_ids, ros_environment,
)
import orjson
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from rclpy.task import Future
from roboflare_bridge.codec.cdr_writer import CdrEncoder, CompressedImageWriter
from roboflare_bridge.codec.message_types import message_class
from roboflare_bridge.common import jsonutil
from roboflare_bridge.control.resources import parse_time
from roboflare_bridge.mirror.topic_qos import IMAGE, QosRules, TopicQos
from roboflare_bridge.parameters import ros_name
from roboflare_bridge.upstream.rosout import drain_subscription
from roboflare_dev.emulator.sim import CameraFeed, SimRobot, TOPICS
from roboflare_dev.testing import stop_process, wait_until_true

KINDS = {'echo': 'topic echo', 'compressed': 'camera compressed',
         'decoded': 'camera decoded', 'logs': 'log forwarding'}
CAMERA_SIZE = '640x480'


@dataclass
class Rates:
    """Offered load of a phase."""

    rate_scale: float = 1.0
    camera_fps: float = 30.0
    log_records_per_s: float = 1000.0
    decoded_camera_fps: float = 30.0


@dataclass
class Settings:
    seconds: float = 10.0
    nominal: Rates = field(default_factory=Rates)
    # Decoding keeps only each robot's newest frame: a camera well above what the decoder
    # takes (~200 frames/s) would measure the frames it drops, not the frames it decodes.
    flood: Rates = field(default_factory=lambda: Rates(1000.0, 5000.0, 20000.0, 200.0))
    ready_timeout_s: float = 90.0


# -- the local subscriber ------------------------------------------------------------------

@dataclass
class Tally:
    messages: int = 0
    payload_bytes: int = 0
    latencies: List[float] = field(default_factory=list)


class LocalSubscriber:
    """
    Raw subscriptions on the mirrored topics: counts, bytes and latency per message.

    The executor hands over one message per wake-up; each callback drains what else is
    queued (as the bridge does for /rosout) so the subscriber keeps up with the bridge.
    Stamped topics start with a std_msgs/Header, whose stamp sits right after the 4-byte
    CDR encapsulation header.
    """

    def __init__(self, topics: List[Tuple[str, str]]) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('fleet_bench_subscriber', context=self.context)
        self.tally = Tally()
        self.sampling = False
        self.seen: set = set()
        for topic, type_name in topics:
            cls = message_class(type_name)
            stamped = next(iter(cls.get_fields_and_field_types()), '') == 'header'
            self._subscribe(topic, cls, stamped)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stopped = Future()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        self.executor.spin_until_future_complete(self._stopped)

    def _subscribe(self, topic: str, cls: type, stamped: bool) -> None:
        tally = self.tally
        holder: List[Any] = []

        def on_message(data: bytes, _info: Any = None) -> None:
            now = time.time()
            tally.messages += 1
            tally.payload_bytes += len(data)
            if stamped and self.sampling and data[1] == 1:  # little-endian CDR
                sec, nanosec = struct.unpack_from('<iI', data, 4)
                tally.latencies.append(now - sec - nanosec * 1e-9)

        def callback(data: bytes) -> None:
            self.seen.add(topic)
            on_message(data)
            drain_subscription(holder[0], on_message)
        holder.append(self.node.create_subscription(cls, topic, callback, QoSProfile(depth=1000),
                                                    raw=True))

    def snapshot(self) -> Tuple[float, int, int]:
        return time.monotonic(), self.tally.messages, self.tally.payload_bytes

    def close(self) -> None:
        # Stop spinning first, and only then destroy what the executor waits on.
        self._stopped.set_result(None)
        self.executor.wake()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


# -- a cell of the table -------------------------------------------------------------------

def latency_summary(samples: List[float]) -> Dict[str, Any]:
    ordered = sorted(samples)
    return {'samples': len(ordered), 'p50_ms': 1000 * percentile(ordered, 0.50),
            'p99_ms': 1000 * percentile(ordered, 0.99),
            'max_ms': 1000 * ordered[-1] if ordered else float('nan')}


def mirrored_topics(kind: str, names: List[str]) -> List[Tuple[str, str]]:
    namespaces = [f'/roboflare/{ros_name(name)}' for name in names]
    if kind == 'echo':
        topics = [(ns + spec.name, spec.type) for ns in namespaces for spec in TOPICS
                  if spec.name != '/tf' and not spec.latched]
        return topics + [('/tf', 'tf2_msgs/msg/TFMessage')]
    suffix = '/camera/image_raw/compressed' if kind == 'compressed' else '/camera/image_raw'
    kind_type = ('sensor_msgs/msg/CompressedImage' if kind == 'compressed'
                 else 'sensor_msgs/msg/Image')
    return [(ns + suffix, kind_type) for ns in namespaces]


# Set from the command line for every bridge a cell starts.
EXTRA_PARAMETERS: Dict[str, Any] = {}
BRIDGE_ENV: Dict[str, str] = {}  # --bridge-from: the bridges' PYTHONPATH


def bridge_parameters(kind: str, robots: int) -> Dict[str, Any]:
    mirrors = {'robots': robot_ids(robots), 'remote_logs': False, **EXTRA_PARAMETERS}
    if kind == 'echo':
        return {**mirrors, 'camera': False}
    return {**mirrors, 'topics': ['/none'], 'decode_images': kind == 'decoded'}


class Shards:
    """Bridge processes sharing the robots, measured as one (CPU and RSS summed)."""

    def __init__(self, emulator: EmulatorProcess, count: int, **parameters: Any) -> None:
        shard = [{'shard_count': count, 'shard_index': i} if count > 1 else {}
                 for i in range(count)]
        self.bridges = [BridgeProcess(emulator, env=BRIDGE_ENV, **parameters, **shard[i])
                        for i in range(count)]

    def cpu_seconds(self) -> float:
        return sum(bridge.cpu_seconds() for bridge in self.bridges)

    def peak_rss_kb(self) -> int:
        return sum(bridge.peak_rss_kb() for bridge in self.bridges)

    def close(self) -> None:
        for bridge in self.bridges:
            bridge.close()


def run_stream_cell(kind: str, robots: int, settings: Settings,
                    shards: int = 1) -> Dict[str, Any]:
    """Topic echo and camera: emulator -> bridge(s) -> this process's subscriptions."""
    emulator = EmulatorProcess(robots, camera_fps=settings.nominal.camera_fps,
                               camera_size=CAMERA_SIZE, rate_scale=settings.nominal.rate_scale)
    bridge = Shards(emulator, shards, **bridge_parameters(kind, robots))
    topics = mirrored_topics(kind, emulator.robot_names())
    subscriber = LocalSubscriber(topics)
    try:
        frequent = {topic for topic, _ in topics if not topic.endswith(('chatter', 'voltage'))}
        wait_until_true(lambda: frequent <= subscriber.seen, settings.ready_timeout_s,
                        f'{len(frequent)} mirrored topics to deliver')
        # Phase 1: latency at nominal rates.
        subscriber.tally.latencies = []
        subscriber.sampling = True
        time.sleep(settings.seconds)
        subscriber.sampling = False
        latency = latency_summary(subscriber.tally.latencies)
        # Phase 2: throughput, flat out.
        flood = settings.flood
        emulator.control('POST', '/_emulator/rates', {
            'rate_scale': flood.rate_scale,
            'camera_fps': flood.decoded_camera_fps if kind == 'decoded' else flood.camera_fps})
        time.sleep(min(2.0, settings.seconds / 2))  # let the queues fill to their steady state
        throughput = measure_throughput(subscriber, bridge, emulator, settings.seconds)
        peak_rss_kb = bridge.peak_rss_kb()
    finally:
        subscriber.close()
        bridge.close()
        emulator.close()
    if kind in ('echo', 'compressed'):  # measured alone, once the cell's processes are gone
        throughput['floor_cpu_s_per_1000'] = floor_cpu_s_per_1000(
            floor_samples(kind), seconds=min(2.0, settings.seconds))
    return {'kind': kind, 'robots': robots, 'shards': shards, 'latency': latency,
            'throughput': throughput, 'peak_rss_mb': peak_rss_kb / 1024}


def floor_samples(kind: str) -> List[Tuple[str, str, Any, bytes, TopicQos]]:
    """
    Return the cell's messages in the proportions it sends them, for the floor (harness).

    Topic echo: one simulated robot's topics, each as often as its rate says (the flood
    multiplies every rate alike), as JSON frames and as the CDR the bridge publishes.
    Camera: a frame of the cell's size, which the bridge only wraps.
    """
    if kind == 'compressed':
        width, height = map(int, CAMERA_SIZE.split('x'))
        jpeg = CameraFeed(width, height).frame(1)
        cdr = CompressedImageWriter('robot_1/camera_optical_frame', 'jpeg').serialise(1, 2, jpeg)
        return [('/floor/camera', 'sensor_msgs/msg/CompressedImage', jpeg, cdr, IMAGE)]
    robot, encoder, samples = SimRobot(0, 'rbt_0001', 'robot-1'), CdrEncoder('robot_1/'), []
    for spec in TOPICS:
        if spec.latched:
            continue
        for i in range(round(spec.rate_hz)):
            msg = robot.builders[spec.name](i / spec.rate_hz)
            frame = orjson.dumps({'op': 'message', 'topic': spec.name, 'type': spec.type,
                                  'msg': msg}).decode()
            samples.append((f'/floor{spec.name}', spec.type, frame,
                            encoder.encode(spec.type, msg), QosRules().for_topic(spec.name)))
    return samples


def measure_throughput(subscriber: LocalSubscriber, bridge: Shards,
                       emulator: EmulatorProcess, seconds: float) -> Dict[str, Any]:
    started, messages, size = subscriber.snapshot()
    bridge_cpu, emulator_cpu = bridge.cpu_seconds(), proc_stat_cpu_seconds(emulator.pid)
    own_cpu = time.process_time()
    time.sleep(seconds)
    ended, messages_end, size_end = subscriber.snapshot()
    elapsed, delivered = ended - started, messages_end - messages
    bridge_cpu = bridge.cpu_seconds() - bridge_cpu
    return {'seconds': elapsed, 'messages': delivered,
            'messages_per_s': delivered / elapsed,
            'mb_per_s': (size_end - size) / elapsed / 1e6,
            'cpu_s_per_1000': 1000 * bridge_cpu / delivered if delivered else float('nan'),
            'cpu_share': {'bridge': bridge_cpu / elapsed,
                          'emulator': (proc_stat_cpu_seconds(emulator.pid) - emulator_cpu)
                          / elapsed,
                          'subscriber': (time.process_time() - own_cpu) / elapsed}}


# -- log forwarding ------------------------------------------------------------------------

PUBLISHER = """
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
from roboflare_bridge.upstream.rosout import rosout_qos
import sys, time, rclpy
rclpy.init()
nodes = [rclpy.create_node(f'bench_source_{i}', enable_rosout=False,
                           start_parameter_services=False) for i in range(int(sys.argv[1]))]
sources = [(node.create_publisher(Log, '/rosout', rosout_qos()),
            Log(level=Log.INFO, name=node.get_name(), file='bench.py', function='run', line=1))
           for node in nodes]
print('ready', flush=True)
i = 0
for line in sys.stdin:  # "<records per second> <seconds>": publish, then print the count
    rate, seconds = (float(v) for v in line.split())
    started, count = time.monotonic(), 0
    while count < rate * seconds:
        publisher, message = sources[i % len(sources)]
        now = time.time_ns()
        message.stamp = Time(sec=now // 1_000_000_000, nanosec=now % 1_000_000_000)
        message.msg = f'benchmark record {i} with a typical length of text for a log line'
        publisher.publish(message)
        i += 1
        count += 1
        if count % 100 == 0:  # pace the offered load
            delay = started + count / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    print(count, flush=True)
"""


class LogSources:
    """A process of ``count`` nodes publishing on /rosout at the rates it is told."""

    def __init__(self, count: int) -> None:
        self.process = subprocess.Popen([sys.executable, '-c', PUBLISHER, str(count)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        if self.process.stdout.readline().strip() != 'ready':
            raise RuntimeError('log publisher failed to start')

    def publish(self, rate: float, seconds: float) -> int:
        self.process.stdin.write(f'{rate} {seconds}\n')
        self.process.stdin.flush()
        count = self.process.stdout.readline().strip()
        if not count.isdigit():
            raise RuntimeError(f'log publisher exited ({self.process.poll()})')
        return int(count)

    def close(self) -> None:
        self.process.stdin.close()  # its signal to end
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            stop_process(self.process, signal.SIGTERM, 5)


def acknowledged(emulator: EmulatorProcess) -> int:
    return emulator.control('GET', '/_emulator/stats')['uploaded_records'].get('rbt_0001', 0)


def wait_for_acks(emulator: EmulatorProcess, expected: int, stall_s: float = 3.0
                  ) -> Tuple[int, float]:
    """Return (acknowledged, when the count last grew): all in, or no progress for stall_s."""
    last, last_change = acknowledged(emulator), time.monotonic()
    while last < expected and time.monotonic() - last_change < stall_s:
        time.sleep(0.05)
        now = acknowledged(emulator)
        if now != last:
            last, last_change = now, time.monotonic()
    return last, last_change


def run_logs_cell(sources_count: int, settings: Settings) -> Dict[str, Any]:
    """Log forwarding: N /rosout publishers -> bridge -> emulator, which acknowledges."""
    emulator = EmulatorProcess(1)
    bridge = BridgeProcess(emulator, forward_logs=True, robot_id='rbt_0001',
                           log_min_level='info')
    sources = LogSources(sources_count)
    try:
        # The bridge has discovered the publishers once a first record comes back acked.
        warm = sources.publish(100, 0.2)
        wait_until_true(lambda: acknowledged(emulator) >= warm, settings.ready_timeout_s,
                        'the first forwarded records')
        # Phase 1: latency at the nominal rate.
        offset = acknowledged(emulator)
        published = sources.publish(settings.nominal.log_records_per_s, settings.seconds)
        latency_acked, _ = wait_for_acks(emulator, offset + published)
        # Phase 2: throughput at the flood rate.
        start_cpu, started = bridge.cpu_seconds(), time.monotonic()
        flood_published = sources.publish(settings.flood.log_records_per_s, settings.seconds)
        flood_acked, last_ack = wait_for_acks(emulator, latency_acked + flood_published)
        bridge_cpu = bridge.cpu_seconds() - start_cpu
        peak_rss_kb = bridge.peak_rss_kb()
        uploaded = emulator.control('GET', '/_emulator/robots/rbt_0001/uploaded-logs')
    finally:
        sources.close()
        bridge.close()
        emulator.close()
    items, arrivals = uploaded['items'], uploaded['arrivals']
    lags = record_lags(items, arrivals, offset, latency_acked)
    forwarded = flood_acked - latency_acked
    elapsed = max(last_ack - started, 1e-9)
    flood_bytes = sum(len(jsonutil.dumps(item)) for item in items[latency_acked:flood_acked])
    return {'kind': 'logs', 'robots': sources_count,
            'latency': {**latency_summary(lags), 'published': published,
                        'acknowledged': latency_acked - offset},
            'throughput': {'seconds': elapsed, 'messages': forwarded,
                           'published': flood_published,
                           'messages_per_s': forwarded / elapsed,
                           'mb_per_s': flood_bytes / elapsed / 1e6,
                           'cpu_s_per_1000': 1000 * bridge_cpu / forwarded if forwarded
                           else float('nan'),
                           'cpu_share': {'bridge': bridge_cpu / elapsed}},
            'peak_rss_mb': peak_rss_kb / 1024}


def record_lags(items: List[Dict[str, Any]], arrivals: List[List[float]], first: int,
                end: int) -> List[float]:
    """Seconds from each record's stamp to the arrival of the batch that stored it."""
    stored_counts = [count for _, count in arrivals]
    lags = []
    for index in range(first, end):
        arrived = arrivals[bisect_left(stored_counts, index + 1)][0]
        sec, nanosec = parse_time(items[index]['ts'])
        lags.append(arrived - sec - nanosec * 1e-9)
    return lags


# -- the table -----------------------------------------------------------------------------

def print_table(cells: List[Dict[str, Any]]) -> None:
    print(f'\n{"stream kind":18} {"robots":>6} {"shards":>6} {"msgs/s":>9} {"MB/s":>7} '
          f'{"p50 ms":>8} {"p99 ms":>8} {"CPU s/1k":>9} {"floor":>6} {"x floor":>7} '
          f'{"peak RSS":>9}')
    for cell in cells:
        kind = KINDS[cell['kind']]
        if cell.get('restamp', 'none') != 'none':
            kind = f'{kind}, restamp {cell["restamp"]}'
        if 'error' in cell:
            print(f'{kind:18} {cell["robots"]:>6}  {cell["error"]}')
            continue
        t, lat = cell['throughput'], cell['latency']
        floor = t.get('floor_cpu_s_per_1000')
        versus = (f'{floor:>6.3f} {t["cpu_s_per_1000"] / floor:>7.2f}' if floor
                  else f'{"-":>6} {"-":>7}')
        print(f'{kind:18} {cell["robots"]:>6} {cell.get("shards", 1):>6} '
              f'{t["messages_per_s"]:>9,.0f} '
              f'{t["mb_per_s"]:>7.1f} {lat["p50_ms"]:>8.2f} {lat["p99_ms"]:>8.2f} '
              f'{t["cpu_s_per_1000"]:>9.3f} {versus} {cell["peak_rss_mb"]:>6.0f} MB')


def run(kinds: List[str], robot_counts: List[int], settings: Settings,
        shard_counts: List[int], restamps: Sequence[str] = ('none',)) -> List[Dict[str, Any]]:
    cells = []
    for kind in kinds:
        for robots in robot_counts:
            for shards in ([1] if kind == 'logs' else shard_counts):
                for restamp in (['none'] if kind == 'logs' else restamps):
                    EXTRA_PARAMETERS['restamp'] = restamp
                    print(f'-- {KINDS[kind]}, {robots} robot(s), {shards} shard(s), '
                          f'restamp {restamp}', flush=True)
                    try:
                        cell = (run_logs_cell(robots, settings) if kind == 'logs'
                                else run_stream_cell(kind, robots, settings, shards))
                    except (TimeoutError, RuntimeError, OSError) as exc:
                        cell = {'kind': kind, 'robots': robots, 'shards': shards,
                                'error': str(exc)}
                    cell['restamp'] = restamp
                    cells.append(cell)
    return cells


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--robots', default='1,10,50')
    parser.add_argument('--kinds', default=','.join(KINDS))
    parser.add_argument('--shards', default='1', help='bridge processes sharing the robots')
    parser.add_argument('--restamp', default='none',
                        help="the bridges' restamp, one cell per mode: none,offset,receipt")
    parser.add_argument('--stream-compression', choices=('on', 'off'), default='on',
                        help="the bridges' stream_compression (permessage-deflate)")
    parser.add_argument('--seconds', type=float, default=10.0, help='length of each phase')
    parser.add_argument('--flood-rate-scale', type=float, default=1000.0)
    parser.add_argument('--flood-camera-fps', type=float, default=5000.0)
    parser.add_argument('--flood-log-rate', type=float, default=20000.0)
    parser.add_argument('--flood-decoded-fps', type=float, default=200.0)
    parser.add_argument('--bridge-from', metavar='DIR',
                        help='run the bridges from the package in DIR (e.g. a worktree of an '
                             'earlier commit: WORKTREE/roboflare_bridge), for before/after runs')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    kinds = args.kinds.split(',')
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f'unknown kinds {sorted(unknown)}; choose from {sorted(KINDS)}')
    settings = Settings(seconds=args.seconds,
                        flood=Rates(args.flood_rate_scale, args.flood_camera_fps,
                                    args.flood_log_rate, args.flood_decoded_fps))
    ros_environment(71)
    EXTRA_PARAMETERS['stream_compression'] = args.stream_compression == 'on'
    if args.bridge_from:
        BRIDGE_ENV['PYTHONPATH'] = args.bridge_from
    cells = run(kinds, [int(n) for n in args.robots.split(',')], settings,
                [int(n) for n in args.shards.split(',')], args.restamp.split(','))
    print_table(cells)
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(cells, out, indent=2)
    return 1 if any('error' in cell for cell in cells) else 0


if __name__ == '__main__':
    sys.exit(main())
