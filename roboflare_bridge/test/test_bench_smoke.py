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
"""A seconds-long run of ``make bench``, so the benchmarks do not rot."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import Dict, List

import pytest
from roboflare_dev.testing import ros_subprocess_env

BENCH = Path(__file__).resolve().parents[2] / 'bench' / 'run.py'


def descendants(pid: int) -> List[int]:
    """Return every process below ``pid`` (the bench's bridges run in sessions of their own)."""
    children: Dict[int, List[int]] = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_smoke(out: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run the smoke bench; past the timeout, stop it and everything it started, and say where."""
    command = [sys.executable, str(BENCH), '--smoke', '--out', str(out)]
    # Output to files, not pipes: a child slow to exit must not keep this waiting for EOF.
    with open(out / 'stdout.txt', 'w+') as stdout, open(out / 'stderr.txt', 'w+') as stderr:
        bench = subprocess.Popen(command, env=ros_subprocess_env(), stdout=stdout,
                                 stderr=stderr, text=True, start_new_session=True)
        try:
            bench.wait(timeout_s)
        except subprocess.TimeoutExpired:
            started = [bench.pid, *descendants(bench.pid)]
            signal_all(started, signal.SIGINT)  # the bridges stop cleanly on SIGINT
            try:
                bench.wait(20)
            finally:
                signal_all(started, signal.SIGKILL)
            pytest.fail(f'the smoke bench took over {timeout_s}s; its output so far:\n'
                        f'{read(stdout)[-3000:]}{read(stderr)[-2000:]}')
        return subprocess.CompletedProcess(command, bench.returncode, read(stdout), read(stderr))


def read(file) -> str:
    file.seek(0)
    return file.read()


def signal_all(pids: List[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# About 1 minute alone; CI runs the two distros' legs side by side on 2 cores.
@pytest.mark.timeout(330)
@pytest.mark.skipif(not BENCH.exists(), reason='the repository bench/ folder is not here')
def test_bench_smoke(tmp_path):
    result = run_smoke(tmp_path, 300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['codec']['types'][0]['bridge_decode_publish'] > 0
    assert results['codec']['map']['convert_ms'] > 0
    assert results['camera']['passthrough']['frames_per_cpu_s'] > 0
    assert [r['kind'] for r in results['websocket']['kinds']] == ['topic echo', 'camera']
    assert all(r['direct_us'] > 0 and r['websockets_parser_us'] > 0
               for r in results['websocket']['kinds'])
    cells = {cell['kind']: cell for cell in results['fleet']}
    assert set(cells) == {'echo', 'compressed', 'decoded', 'logs'}
    for kind, cell in cells.items():
        assert cell['robots'] == 2 and 'error' not in cell, cell
        assert cell['throughput']['messages'] > 0 and cell['throughput']['mb_per_s'] > 0, kind
        assert cell['latency']['samples'] > 0 and cell['latency']['p99_ms'] > 0, kind
        assert cell['throughput']['cpu_s_per_1000'] > 0 and cell['peak_rss_mb'] > 10, kind
    [two_bridges] = results['shards']  # restamping too: the restamp part's smoke run
    assert two_bridges['shards'] == 2 and two_bridges['restamp'] == 'offset'
    assert 'error' not in two_bridges and two_bridges['throughput']['messages'] > 0
    demand = {cell['cell']: cell for cell in results['demand']['cells']}
    assert all('error' not in cell for cell in demand.values()), demand
    assert demand['nothing watched']['by_stream_kb_per_s'].get('camera/ws', 0) == 0
    assert demand['on demand off']['by_stream_kb_per_s']['camera/ws'] > 0
    assert demand['one robot watched']['upstream_kb_per_s'] > 0
    assert results['soak']['start_kb'] > 0 and len(results['soak']['rss_kb']) >= 2
    for heading in ('websocket receive, topic echo', 'topic echo', 'camera decoded',
                    'log forwarding', 'one robot watched', 'soak, 2 robots'):
        assert heading in result.stdout
