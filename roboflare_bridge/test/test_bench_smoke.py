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
from pathlib import Path
import subprocess
import sys

import pytest
from roboflare_bridge.testing import ros_subprocess_env

BENCH = Path(__file__).resolve().parents[2] / 'bench' / 'run.py'


@pytest.mark.skipif(not BENCH.exists(), reason='the repository bench/ folder is not here')
def test_bench_smoke(tmp_path):
    result = subprocess.run([sys.executable, str(BENCH), '--smoke', '--out', str(tmp_path)],
                            env=ros_subprocess_env(), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['codec']['types'][0]['bridge_decode_publish'] > 0
    assert results['codec']['map']['convert_ms'] > 0
    assert results['camera']['passthrough']['frames_per_cpu_s'] > 0
    cells = {cell['kind']: cell for cell in results['fleet']}
    assert set(cells) == {'echo', 'compressed', 'decoded', 'logs'}
    for kind, cell in cells.items():
        assert cell['robots'] == 2 and 'error' not in cell, cell
        assert cell['throughput']['messages'] > 0 and cell['throughput']['mb_per_s'] > 0, kind
        assert cell['latency']['samples'] > 0 and cell['latency']['p99_ms'] > 0, kind
        assert cell['throughput']['cpu_s_per_1000'] > 0 and cell['peak_rss_mb'] > 10, kind
    shards = {cell['shards']: cell for cell in results['shards']}
    assert set(shards) == {1, 2} and all('error' not in cell for cell in shards.values())
    assert shards[2]['throughput']['messages'] > 0
    assert results['soak']['start_kb'] > 0 and len(results['soak']['rss_kb']) >= 2
    for heading in ('topic echo', 'camera decoded', 'log forwarding', 'soak, 2 robots'):
        assert heading in result.stdout
