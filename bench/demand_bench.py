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
On-demand mirroring: the bytes the cloud sends and the CPU a bridge spends, by what is watched.

One emulator with ``--robots`` robots at nominal rates (topics at their simulated rates,
cameras 640x480 at 15 fps, 2 log records a second) and a fresh bridge per cell:

    nothing watched         mirror_on_demand true, nothing local subscribes
    one robot watched       true; a subscriber (another process) on each of robot_1's
                            topics, its camera and its remote logs
    one robot and /tf       the same and /tf, as rviz does: every robot's /tf then flows
    on demand off           mirror_on_demand false: every topic and camera streams
    robot_1 alone           a bridge selecting robot_1 only, the same subscriber
    robot_1 alone and /tf   the same and /tf

Upstream bytes per second are read at the emulator (what the robots' uplinks carry), the
bridge's CPU from /proc, both over ``--seconds`` once what is watched flows. Targets:
nothing watched at most 2 % of "on demand off"'s bytes; one robot watched at most 1.3x the
bytes and CPU of robot_1 alone. The exit status is 1 when a cell fails, not when a target
is missed (the table says so).

    python bench/demand_bench.py [--robots 50] [--seconds 10] [--cells A,B] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness import BridgeProcess, EmulatorProcess, RemoteSubscriber, robot_ids, ros_environment
from roboflare_bridge.parameters import ros_name
from roboflare_dev.emulator.sim import TOPICS
from roboflare_dev.testing import wait_until_true

CAMERA_FPS = 15.0
CAMERA_SIZE = '640x480'
LOG_RATE = 2.0
TF = ('/tf', 'tf2_msgs/msg/TFMessage')
WATCHED = 'rbt_0001'


def watched_topics(robot_name: str, with_tf: bool) -> List[Tuple[str, str]]:
    """Return every topic of one robot as a local subscriber sees it, /tf if asked."""
    namespace = f'/roboflare/{ros_name(robot_name)}'
    topics = [(namespace + spec.name, spec.type) for spec in TOPICS
              if spec.name not in ('/tf', '/tf_static')]
    topics += [(namespace + '/camera/image_raw/compressed', 'sensor_msgs/msg/CompressedImage'),
               (namespace + '/rosout', 'rcl_interfaces/msg/Log')]
    return topics + [TF] if with_tf else topics


class Upstream:
    """What the emulator has sent, per robot and stream, as its counters say."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator

    def stats(self) -> Dict[str, Any]:
        return self.emulator.control('GET', '/_emulator/stats')

    def sent_bytes(self) -> Dict[str, int]:
        """Return the bytes sent so far by stream kind, over every robot."""
        totals: Dict[str, int] = {}
        for by_stream in self.stats()['sent_bytes'].values():
            for stream, sent in by_stream.items():
                totals[stream] = totals.get(stream, 0) + sent
        return totals

    def connected(self, robot_id: str, stream: str) -> bool:
        return f'{robot_id}/{stream}' in self.stats()['streams']

    def echo_connections(self) -> int:
        return sum(1 for name in self.stats()['streams'] if name.endswith('/ros/topics/echo'))

    def subscribed(self, robot_id: str) -> List[str]:
        return self.stats()['streams'].get(f'{robot_id}/ros/topics/echo', {}).get(
            'subscriptions', [])


def run_cell(name: str, emulator: EmulatorProcess, upstream: Upstream, robots: List[str],
             on_demand: bool, watch: Optional[List[Tuple[str, str]]], settings: argparse.Namespace,
             ready: Callable[[], bool]) -> Dict[str, Any]:
    """Start a bridge (and the watcher), wait until ``ready``, then measure a window."""
    bridge = BridgeProcess(emulator, robots=robots, mirror_on_demand=on_demand)
    subscriber = None
    try:
        wait_until_true(lambda: upstream.echo_connections() >= len(robots), 120,
                        f'{len(robots)} echo streams connected')
        if watch is not None:
            subscriber = RemoteSubscriber(watch, best_effort=True)
        wait_until_true(ready, 60, f'{name}: what is watched to flow')
        time.sleep(settings.warmup)  # a measuring bench: let the flows reach steady state
        began, cpu, sent = time.monotonic(), bridge.cpu_seconds(), upstream.sent_bytes()
        time.sleep(settings.seconds)
        elapsed = time.monotonic() - began
        cpu_s = bridge.cpu_seconds() - cpu
        after = upstream.sent_bytes()
    finally:
        if subscriber is not None:
            subscriber.close()
        bridge.close()
    by_stream = {stream: (after[stream] - sent.get(stream, 0)) / elapsed / 1000
                 for stream in after}
    return {'cell': name, 'robots': len(robots), 'on_demand': on_demand,
            'upstream_kb_per_s': round(sum(by_stream.values()), 1),
            'by_stream_kb_per_s': {stream: round(rate, 1) for stream, rate in by_stream.items()},
            'bridge_cpu_percent': round(100 * cpu_s / elapsed, 1)}


def run(settings: argparse.Namespace) -> Dict[str, Any]:
    emulator = EmulatorProcess(settings.robots, camera_fps=CAMERA_FPS, camera_size=CAMERA_SIZE,
                               log_rate=LOG_RATE)
    upstream = Upstream(emulator)
    everyone = robot_ids(settings.robots)
    first_name = emulator.robot_names()[0]

    def watching() -> bool:
        return (upstream.connected(WATCHED, 'camera/ws') and
                upstream.connected(WATCHED, 'logs/ws') and '/odom' in upstream.subscribed(WATCHED))

    def everything() -> bool:
        return all(upstream.connected(robot, 'camera/ws') for robot in everyone)

    def nothing() -> bool:
        return not any(upstream.connected(robot, 'camera/ws') for robot in everyone)

    cells = []
    try:
        for name, robots, on_demand, watch, ready in [cell for cell in (
                ('nothing watched', everyone, True, None, nothing),
                ('one robot watched', everyone, True, watched_topics(first_name, False),
                 watching),
                ('one robot and /tf', everyone, True, watched_topics(first_name, True),
                 watching),
                ('on demand off', everyone, False, None, everything),
                ('robot_1 alone', [WATCHED], True, watched_topics(first_name, False), watching),
                ('robot_1 alone and /tf', [WATCHED], True, watched_topics(first_name, True),
                 watching)) if settings.cells is None or cell[0] in settings.cells]:
            print(f'-- {name}', flush=True)
            try:
                cells.append(run_cell(name, emulator, upstream, robots, on_demand, watch,
                                      settings, ready))
            except (RuntimeError, TimeoutError) as error:
                cells.append({'cell': name, 'robots': len(robots), 'error': str(error)[-2000:]})
    finally:
        emulator.close()
    return {'robots': settings.robots, 'seconds': settings.seconds, 'cells': cells,
            'targets': targets(cells)}


def targets(cells: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Return the ratios the targets are about, and whether each is met."""
    by_name = {cell['cell']: cell for cell in cells if 'error' not in cell}
    found: Dict[str, Any] = {}
    if {'nothing watched', 'on demand off'} <= set(by_name):
        ratio = (by_name['nothing watched']['upstream_kb_per_s'] /
                 by_name['on demand off']['upstream_kb_per_s'])
        found['nothing_vs_off_bytes'] = {'ratio': round(ratio, 4), 'limit': 0.02,
                                         'met': ratio <= 0.02}
    for watched, alone in (('one robot watched', 'robot_1 alone'),
                           ('one robot and /tf', 'robot_1 alone and /tf')):
        if {watched, alone} <= set(by_name):
            for figure in ('upstream_kb_per_s', 'bridge_cpu_percent'):
                ratio = by_name[watched][figure] / max(by_name[alone][figure], 1e-9)
                found[f'{watched} vs {alone}: {figure}'] = {
                    'ratio': round(ratio, 2), 'limit': 1.3, 'met': ratio <= 1.3}
    return found


def print_table(result: Dict[str, Any]) -> None:
    print(f'\n{result["robots"]} robots at nominal rates (cameras {CAMERA_SIZE} at '
          f'{CAMERA_FPS:g} fps), {result["seconds"]:g} s per cell:')
    print(f'{"cell":<24}{"robots":>7}{"upstream kB/s":>15}{"bridge CPU %":>14}   by stream kB/s')
    for cell in result['cells']:
        if 'error' in cell:
            print(f'{cell["cell"]:<24}{cell["robots"]:>7}   failed: {cell["error"][-200:]}')
            continue
        streams = ', '.join(f'{stream} {rate:,.1f}'
                            for stream, rate in sorted(cell['by_stream_kb_per_s'].items()))
        print(f'{cell["cell"]:<24}{cell["robots"]:>7}{cell["upstream_kb_per_s"]:>15,.1f}'
              f'{cell["bridge_cpu_percent"]:>14.1f}   {streams}')
    for name, target in result['targets'].items():
        print(f'{name}: {target["ratio"]:g} (target at most {target["limit"]:g}) '
              f'{"met" if target["met"] else "MISSED"}')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--robots', type=int, default=50)
    parser.add_argument('--seconds', type=float, default=10.0, help='the measured window')
    parser.add_argument('--warmup', type=float, default=3.0)
    parser.add_argument('--cells', type=lambda text: text.split(','),
                        help='only these cells, by name, comma-separated')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    ros_environment(72)
    result = run(args)
    print_table(result)
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(result, out, indent=2)
    return 1 if any('error' in cell for cell in result['cells']) else 0


if __name__ == '__main__':
    sys.exit(main())
