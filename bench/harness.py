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
What the benchmarks share: the processes, /proc figures, ROS env and the messages' floor.

The floor is the least a bridge must spend on a mirrored message (floor_cpu_s_per_1000).
The processes are the tests' own helpers (roboflare_dev.testing), so the benchmarks
start the bridge exactly as the end-to-end tests do.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import orjson
import rclpy
from roboflare_bridge.codec.message_types import message_class
from roboflare_bridge.mirror.topic_qos import qos_profile, TopicQos
from roboflare_dev import testing


def ros_environment(default_domain: int) -> None:
    """Keep DDS on this machine, on a domain of its own unless the caller chose one."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(default_domain))


def proc_stat_cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of any process (from /proc)."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def proc_status_kb(pid: int, key: str) -> int:
    """Return a ``kB`` line of /proc/<pid>/status: VmRSS now, VmHWM the peak."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of a sorted sequence (nan when empty)."""
    if not ordered:
        return float('nan')
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def robot_ids(count: int) -> List[str]:
    """Return the emulator's first robot ids: rbt_0001, rbt_0002, ..."""
    return [f'rbt_{i:04d}' for i in range(1, count + 1)]


class EmulatorProcess(testing.EmulatorProcess):
    """``emulator`` on a free port, at the given simulated rates."""

    def __init__(self, robots: int, *, camera_fps: float = 10.0, camera_size: str = '320x240',
                 rate_scale: float = 1.0, log_rate: float = 0.0) -> None:
        super().__init__('--robots', str(robots), '--camera-fps', str(camera_fps),
                         '--camera-size', camera_size, '--rate-scale', str(rate_scale),
                         '--log-rate', str(log_rate))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def robot_names(self) -> List[str]:
        return [robot['name'] for robot in self.control('GET', '/api/robots')['items']]


class BridgeProcess(testing.BridgeProcess):
    """The ``bridge`` against an emulator, with a spool of its own, measured from /proc."""

    def __init__(self, emulator: EmulatorProcess, env: Optional[Dict[str, str]] = None,
                 **parameters: Any) -> None:
        self.workdir = tempfile.TemporaryDirectory(prefix='roboflare-bench-')
        # Every selected topic streams, watched or not, unless asked otherwise: the figures
        # measure the mirroring path at the robots' full rates, as before mirror_on_demand.
        super().__init__(Path(self.workdir.name), emulator.url, emulator.token,
                         {'spool_dir': f'{self.workdir.name}/spool', 'mirror_on_demand': False,
                          **parameters}, env=env)

    @property
    def pid(self) -> int:
        self.check_running()
        return self.proc.pid

    def check_running(self) -> None:
        """Raise RuntimeError with the end of the bridge's log if it has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f'the bridge exited with {self.proc.returncode}:\n'
                               f'{self.log()[-3000:]}')

    def cpu_seconds(self) -> float:
        return proc_stat_cpu_seconds(self.pid)

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, 'VmRSS')

    def peak_rss_kb(self) -> int:
        return proc_status_kb(self.pid, 'VmHWM')

    def close(self) -> None:
        self.stop(timeout=15)
        self.workdir.cleanup()


SUBSCRIBER = """
from roboflare_bridge.codec.message_types import message_class
from rclpy.qos import QoSProfile, ReliabilityPolicy
import sys, rclpy
rclpy.init()
node = rclpy.create_node('bench_subscriber')
reliability = ReliabilityPolicy.BEST_EFFORT if sys.argv[1] == 'best_effort' else None
qos = QoSProfile(depth=1000, **({'reliability': reliability} if reliability else {}))
for topic, type_name in zip(sys.argv[2::2], sys.argv[3::2]):
    node.create_subscription(message_class(type_name), topic, lambda data: None, qos, raw=True)
rclpy.spin(node)
"""


class RemoteSubscriber:
    """
    Raw subscriptions on (topic, type) pairs in a process of their own.

    Reliable by default; ``best_effort`` subscriptions match every publisher, best-effort
    ones (a camera's) too.
    """

    def __init__(self, topics: Sequence[Tuple[str, str]], best_effort: bool = False) -> None:
        arguments = [item for pair in topics for item in pair]
        # No output: a process slow to stop must not hold the bench's pipes open.
        self.process = subprocess.Popen(
            [sys.executable, '-c', SUBSCRIBER, 'best_effort' if best_effort else 'reliable',
             *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self) -> None:
        testing.stop_process(self.process, signal.SIGTERM, 10)  # SIGKILL if it lingers


def wait_for_subscriber(publisher: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f'no subscriber on {publisher.topic_name}')
        time.sleep(0.05)  # discovery has no event to wait on from rclpy


def floor_cpu_s_per_1000(samples: Sequence[Tuple[str, str, Any, bytes, TopicQos]],
                         seconds: float = 2.0) -> float:
    """
    Return the CPU seconds per 1,000 messages of the least a bridge must do for each one.

    ``samples`` are (topic, type, frame, cdr, qos): the frame as the bridge receives it,
    parsed with ``orjson.loads`` when it is text (a JSON echo frame), then the message
    already serialised published, with the bridge's QoS for it, to a subscriber in another
    process. Measured in this process (its DDS threads included, as the bridge's are), with
    nothing else running. A publish the rmw refuses (its queue full) is not counted.
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_floor', context=context)
    qos_by_topic = {topic: qos for topic, _, _, _, qos in samples}
    topics = sorted({(topic, type_name) for topic, type_name, _, _, _ in samples})
    subscriber = RemoteSubscriber(topics)
    try:
        publishers = {topic: node.create_publisher(message_class(type_name), topic,
                                                   qos_profile(qos_by_topic[topic]))
                      for topic, type_name in topics}
        for publisher in publishers.values():
            wait_for_subscriber(publisher)
        work = [(publishers[topic], frame, cdr) for topic, _, frame, cdr, _ in samples]
        count, started = 0, time.process_time()
        wall_end = time.monotonic() + seconds
        while time.monotonic() < wall_end:
            for publisher, frame, cdr in work:
                if isinstance(frame, str):
                    orjson.loads(frame)
                try:
                    publisher.publish(cdr)
                    count += 1
                except Exception:  # noqa: BLE001 - rclpy's RCLError: the rmw refused it
                    pass
        return 1000 * (time.process_time() - started) / max(count, 1)
    finally:
        subscriber.close()
        node.destroy_node()
        context.try_shutdown()
