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
What the benchmarks share: the emulator and the bridge as processes, /proc figures, ROS env.

Every process runs with DDS on loopback and the domain of the calling benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
from typing import Any, List, Optional, Sequence

import httpx

BIN = Path(sys.executable).parent


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


class EmulatorProcess:
    """``emulator`` on a free port; its URL and generated token come from its first lines."""

    def __init__(self, robots: int, *, camera_fps: float = 10.0, camera_size: str = '320x240',
                 rate_scale: float = 1.0, log_rate: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [str(BIN / 'emulator'), '--port', '0', '--robots', str(robots),
             '--camera-fps', str(camera_fps), '--camera-size', camera_size,
             '--rate-scale', str(rate_scale), '--log-rate', str(log_rate)],
            stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().split()[-1]
        self.token = self.process.stdout.readline().strip()
        self._http = httpx.Client(base_url=self.url, timeout=60,
                                  headers={'Authorization': f'Bearer {self.token}'})

    @property
    def pid(self) -> int:
        return self.process.pid

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def robot_names(self) -> List[str]:
        return [robot['name'] for robot in self.control('GET', '/api/robots')['items']]

    def close(self) -> None:
        self._http.close()
        self.process.terminate()
        self.process.wait(10)


def _ros_value(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(f"'{item}'" for item in value) + ']'
    return str(value)


class BridgeProcess:
    """The ``bridge`` console script against an emulator, with a token file and a spool."""

    def __init__(self, emulator: EmulatorProcess, **parameters: Any) -> None:
        self.workdir = tempfile.TemporaryDirectory(prefix='roboflare-bench-')
        token_file = Path(self.workdir.name) / 'token'
        token_file.write_text(emulator.token)
        token_file.chmod(0o600)
        parameters = {'base_url': emulator.url, 'token_file': str(token_file),
                      'spool_dir': f'{self.workdir.name}/spool', **parameters}
        arguments: List[str] = []
        for name, value in parameters.items():
            arguments += ['-p', f'{name}:={_ros_value(value)}']
        self.log = open(Path(self.workdir.name) / 'bridge.log', 'w')
        self.process = subprocess.Popen([str(BIN / 'bridge'), '--ros-args', *arguments],
                                        stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_running(self) -> None:
        """Raise RuntimeError with the end of the bridge's log if it has exited."""
        if self.process.poll() is not None:
            self.log.flush()
            tail = (Path(self.workdir.name) / 'bridge.log').read_text()[-3000:]
            raise RuntimeError(f'the bridge exited with {self.process.returncode}:\n{tail}')

    def cpu_seconds(self) -> float:
        self.check_running()
        return proc_stat_cpu_seconds(self.pid)

    def rss_kb(self) -> int:
        self.check_running()
        return proc_status_kb(self.pid, 'VmRSS')

    def peak_rss_kb(self) -> int:
        self.check_running()
        return proc_status_kb(self.pid, 'VmHWM')

    def close(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        self.workdir.cleanup()
        return self.process.returncode


def robot_ids(count: int) -> List[str]:
    """Return the emulator's first robot ids: rbt_0001, rbt_0002, ..."""
    return [f'rbt_{i:04d}' for i in range(1, count + 1)]
