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
``make demo``: the emulator, the bridge against it, and a live view of what flows.

Starts the emulator (three simulated robots) and the bridge as separate processes, then
shows, refreshed in place: each robot's mirrored topics with their rates, its camera's fps
and resolution, this machine's logs forwarded upstream and acknowledged, and a deployment
run through the bridge's ``~/deploy`` action. Saves one decoded camera frame as a PNG, and
keeps a top-down picture of the fleet (maps, poses, footprints, scans) up to date in
``fleet_top_down.png``, drawn from the mirrored topics as rviz would show them.

    python -m roboflare_dev.demo [--duration SECONDS] [--output DIR]
"""

from __future__ import annotations

import argparse
from collections import defaultdict, deque
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Set

from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
import numpy as np
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from roboflare_bridge.codec.message_types import message_class, UnknownType
from roboflare_bridge.mirror.topic_qos import LATCHED as LATCHED_TOPIC, qos_profile
from roboflare_interfaces.action import Deploy
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from .fleet_view import draw, FleetView
from .testing import executable

ROBOTS = ('rbt_0001', 'rbt_0002', 'rbt_0003')
NAMES = tuple(f'robot_{i}' for i in range(1, len(ROBOTS) + 1))  # the emulator's, ROS-safe
BRIDGE = '/roboflare_demo/roboflare_bridge'
FLEET_FRAME = 'roboflare_fleet'
LATCHED = qos_profile(LATCHED_TOPIC)


def write_png(path: Path, image: Image) -> None:
    """Write a bgr8 Image as an RGB PNG."""
    from matplotlib import image as matplotlib_image
    rows = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.step)
    bgr = rows[:, :image.width * 3].reshape(image.height, image.width, 3)
    matplotlib_image.imsave(path, np.ascontiguousarray(bgr[..., ::-1]))


class Rates:
    """Messages per second per topic over a sliding window."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: Dict[str, Deque[float]] = defaultdict(deque)
        self._counts: Dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def tick(self, topic: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._times[topic]
            times.append(now)
            self._counts[topic] += 1
            while times and now - times[0] > self.window_s:
                times.popleft()

    def count(self, topic: str) -> int:
        with self._lock:
            return self._counts[topic]

    def rate(self, topic: str) -> float:
        now = time.monotonic()
        with self._lock:
            times = self._times.get(topic, ())
            return sum(1 for t in times if now - t <= self.window_s) / self.window_s


class DemoViewer(Node):
    """Watches the mirrored robots, logs like an application, runs a deployment."""

    def __init__(self, output: Path) -> None:
        super().__init__('demo_app')
        self.output = output
        self.rates = Rates()
        self.subscribed: Dict[str, Any] = {}
        self.latched: Set[str] = set()
        self.diagnostics: Dict[str, Dict[str, str]] = {}
        self.deploy_line = 'waiting for the bridge'
        self.saved_image: Optional[Path] = None
        self.top_down: Optional[Path] = None
        self.heartbeats = 0
        self.fleet = FleetView(FLEET_FRAME)
        self._watch_fleet()
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self._image_sub = self.create_subscription(
            Image, '/roboflare/robot_1/camera/image_raw', self._on_image, 2)
        self.create_timer(1.0, self._discover)
        self.create_timer(0.5, self._heartbeat)
        self._deploy = ActionClient(self, Deploy, f'{BRIDGE}/deploy')
        self._deploy_started = False

    def _watch_fleet(self) -> None:
        """Subscribe to what the top-down picture shows, as rviz's displays would."""
        self.create_subscription(TFMessage, '/tf', self.fleet.on_tf, 100)
        self.create_subscription(TFMessage, '/tf_static', self.fleet.on_tf, LATCHED)
        for name in NAMES:
            self.fleet.add_robot(name, f'{name}/')
            namespace = f'/roboflare/{name}'
            self.create_subscription(OccupancyGrid, f'{namespace}/map',
                                     lambda m, n=name: self.fleet.on_map(n, m), LATCHED)
            self.create_subscription(String, f'{namespace}/robot_description',
                                     lambda m, n=name: self.fleet.on_description(n, m.data),
                                     LATCHED)
            self.create_subscription(LaserScan, f'{namespace}/scan',
                                     lambda m, n=name: self.fleet.on_scan(n, m),
                                     qos_profile_sensor_data)

    def save_top_down(self) -> Path:
        path = self.output / 'fleet_top_down.png'
        self.output.mkdir(parents=True, exist_ok=True)
        draw(self.fleet.snapshot(), path, f'{len(NAMES)} mirrored robots under {FLEET_FRAME}')
        return path

    def _discover(self) -> None:
        # Every mirrored topic but the cameras: with mirror_on_demand a camera streams only
        # while it is watched, and robot_1's is watched only until a frame is saved.
        for topic, types in self.get_topic_names_and_types():
            if not topic.startswith('/roboflare/') or topic in self.subscribed or \
                    '/camera/' in topic:
                continue
            try:
                cls = message_class(types[0])
            except UnknownType:
                continue
            # A latched topic has one message, long ago: only a transient-local reader gets it.
            latched = any(endpoint.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                          for endpoint in self.get_publishers_info_by_topic(topic))
            if latched:
                self.latched.add(topic)
            self.subscribed[topic] = self.create_subscription(
                cls, topic, lambda _, t=topic: self.rates.tick(t),
                LATCHED if latched else qos_profile_sensor_data)
        if not self._deploy_started and self._deploy.server_is_ready():
            self._deploy_started = True
            self._start_deploy()

    def _heartbeat(self) -> None:
        self.heartbeats += 1
        self.get_logger().info(f'demo application heartbeat {self.heartbeats}')

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            values['_message'] = status.message
            self.diagnostics[status.name.replace('roboflare_bridge: ', '')] = values

    def _on_image(self, image: Image) -> None:
        if self.saved_image is None:
            self.output.mkdir(parents=True, exist_ok=True)
            path = self.output / 'robot_1_camera.png'
            write_png(path, image)
            self.saved_image = path
            # One frame is enough: unsubscribing stops the bridge's decoding, and (on demand,
            # after on_demand_linger_s) the camera's stream from the robot.
            self.destroy_subscription(self._image_sub)

    def _start_deploy(self) -> None:
        goal = Deploy.Goal(release_id='rel_navstack_141', robot_ids=list(ROBOTS))
        self.deploy_line = 'sending goal: release rel_navstack_141 -> ' + ', '.join(ROBOTS)
        future = self._deploy.send_goal_async(goal, feedback_callback=self._on_feedback)
        future.add_done_callback(self._on_goal)

    def _on_goal(self, future: Any) -> None:
        handle = future.result()
        if not handle.accepted:
            self.deploy_line = 'goal rejected'
            return
        handle.get_result_async().add_done_callback(self._on_result)

    def _on_feedback(self, message: Any) -> None:
        feedback = message.feedback
        bar = '#' * int(feedback.progress * 20)
        robots = ' '.join(f'{r.robot_id}:{r.status}' for r in feedback.robots)
        self.deploy_line = (f'{feedback.deployment_id} [{bar:20}] {feedback.progress:4.0%} '
                            f'{feedback.status}  {robots}')

    def _on_result(self, future: Any) -> None:
        result = future.result()
        outcome = 'SUCCEEDED' if result.status == GoalStatus.STATUS_SUCCEEDED else 'ENDED'
        self.deploy_line = (f'{result.result.deployment.id} {outcome}: '
                            f'{result.result.deployment.status} '
                            f'{result.result.error_message}'.rstrip())


def render(viewer: DemoViewer, started: float, emulator_url: str) -> str:
    elapsed = time.monotonic() - started
    lines = [f'Roboflare bridge demo — emulator {emulator_url} — {elapsed:.0f} s '
             '(Ctrl-C to stop)', '']
    control = viewer.diagnostics.get('control plane', {})
    lines.append(f'control plane: org {control.get("org_id", "?")}, '
                 f'{control.get("requests", 0)} requests, {control.get("retries", 0)} retries')
    fleet = viewer.diagnostics.get('fleet', {})
    lines.append(f'from the cloud: {float(fleet.get("received_bytes_per_s", 0)) / 1000:.1f} kB/s '
                 f'for {fleet.get("mirrored", 0)} robots (on demand: only what is watched '
                 'streams)')
    for name, robot_id in zip(NAMES, ROBOTS):
        diag = viewer.diagnostics.get(f'robot {name}', {})
        lines += ['', f'{name} ({robot_id}) under /roboflare/{name}: '
                  f'{diag.get("_message", "connecting")}']
        topics = sorted(t for t in viewer.subscribed if t.startswith(f'/roboflare/{name}/'))
        for topic in topics:
            rate = f'{viewer.rates.rate(topic):6.1f} msg/s'
            if topic in viewer.latched and not viewer.rates.rate(topic):  # e.g. a map
                rate = 'latched, ' + ('received' if viewer.rates.count(topic) else 'waiting')
            lines.append(f'   {topic[len(name) + 11:]:<32} {rate}')
        lines.append(f'   camera: {float(diag.get("camera_fps", 0)):.1f} fps at '
                     f'{diag.get("camera_resolution", "?")}, '
                     f'{float(diag.get("camera_bytes_per_s", 0)) / 1000:.0f} kB/s, '
                     f'{diag.get("camera_decoded", 0)} decoded')
        lines.append(f'   remote logs on /roboflare/{name}/rosout: '
                     f'{diag.get("remote_logs_published", 0)}')
    forwarding = viewer.diagnostics.get('log forwarding', {})
    lines += ['', f'logs forwarded upstream as {ROBOTS[0]}: {forwarding.get("forwarded", 0)} '
              f'sent, {forwarding.get("acked_records", 0)} acknowledged, '
              f'{forwarding.get("spool_records", 0)} waiting in the spool',
              f'deployment (~/deploy action): {viewer.deploy_line}']
    if viewer.saved_image is not None:
        lines.append(f'camera frame saved: {viewer.saved_image}')
    if viewer.top_down is not None:
        lines.append(f'top-down view of the fleet: {viewer.top_down}')
    return '\n'.join(lines)


def start_processes(workdir: Path, params_file: Path) -> tuple:
    emulator = subprocess.Popen([executable('emulator'), '--port', '0',
                                 '--robots', str(len(ROBOTS)),
                                 '--camera-size', '640x480', '--camera-fps', '15',
                                 '--deploy-duration', '8'],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    url = emulator.stdout.readline().split()[-1]
    token_file = workdir / 'token'
    token_file.write_text(emulator.stdout.readline())
    token_file.chmod(0o600)  # the token goes in a file, never on a command line
    robots = '[' + ','.join(ROBOTS) + ']'
    bridge = subprocess.Popen(
        [executable('bridge'), '--ros-args', '-r', '__ns:=/roboflare_demo',
         '--params-file', str(params_file), '-p', f'base_url:={url}',
         '-p', f'token_file:={token_file}', '-p', f'robots:={robots}',
         '-p', 'forward_logs:=true', '-p', f'robot_id:={ROBOTS[0]}',
         '-p', f'spool_dir:={workdir / "spool"}', '-p', 'log_ignore_nodes:=[]'],
        stdout=open(workdir / 'bridge.log', 'wb'), stderr=subprocess.STDOUT,
        start_new_session=True)
    return emulator, bridge, url


def find_params_file() -> Path:
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory('roboflare_bridge')) / 'config'
        if (installed / 'bridge.yaml').exists():
            return installed / 'bridge.yaml'
    except (ImportError, LookupError, ValueError, OSError):  # not installed by colcon
        pass
    import roboflare_bridge  # a checkout: the package's source tree holds its config
    return Path(roboflare_bridge.__file__).resolve().parents[1] / 'config' / 'bridge.yaml'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--duration', type=float, default=0.0, help='seconds; 0 = until Ctrl-C')
    parser.add_argument('--output', type=Path, default=Path('demo-output'))
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # A PyPI venv is its own ROS prefix; a sourced ROS install has set this already.
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    workdir = Path(tempfile.mkdtemp(prefix='roboflare-demo-'))
    print('starting the emulator and the bridge ...', flush=True)
    emulator, bridge, url = start_processes(workdir, find_params_file())
    # No lock in a signal handler: it would deadlock if the main thread held it (bridge_node).
    signalled: List[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: signalled.append(received))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    viewer = DemoViewer(args.output.resolve())
    executor = SingleThreadedExecutor()
    executor.add_node(viewer)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    started = drawn = time.monotonic()
    interactive = sys.stdout.isatty()
    try:
        while not signalled:
            time.sleep(1.0)  # the refresh period; a stop is seen within a second
            if signalled:
                break
            view = render(viewer, started, url)
            print('\033[H\033[2J' + view if interactive else view + '\n' + '-' * 60,
                  flush=True)
            if time.monotonic() - drawn >= 2.0:  # drawing takes a few hundred ms
                viewer.top_down, drawn = viewer.save_top_down(), time.monotonic()
            if args.duration and time.monotonic() - started >= args.duration:
                break
            if bridge.poll() is not None:
                print(f'the bridge exited ({bridge.returncode}); see {workdir / "bridge.log"}')
                break
    finally:
        executor.shutdown()
        viewer.destroy_node()
        rclpy.try_shutdown()
        for process in (bridge, emulator):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in (bridge, emulator):
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
    print(f'\nstopped. bridge log: {workdir / "bridge.log"}')
    if viewer.saved_image is not None:
        print(f'a decoded camera frame of robot_1 is in {viewer.saved_image}')
    if viewer.top_down is not None:
        print(f'the fleet seen from above is in {viewer.top_down}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
