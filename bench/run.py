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
``make bench``: every benchmark, one summary, results in bench-results/results.json.

    python bench/run.py [--smoke]     (--smoke: seconds-long run used by the tests)
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys

HERE = Path(__file__).resolve().parent
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def run(script, args, out):
    print(f'== {script} {" ".join(args)}', flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args, '--json', str(out)], check=True)
    return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--smoke', action='store_true')
    parser.add_argument('--out', type=Path, default=Path('bench-results'))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        codec, camera, logs = ['--seconds', '0.3'], ['--seconds', '2', '--frames', '300'], \
            ['--seconds', '1', '--rate', '2000']
    else:
        codec, camera, logs = ['--seconds', '5'], ['--seconds', '10'], ['--seconds', '10']
    results = {
        'machine': {'cpus': os.cpu_count(), 'python': sys.version.split()[0],
                    'distro': os.environ.get('DISTRO', '')},
        'codec': run('codec_bench.py', codec, args.out / 'codec.json'),
        'camera': run('camera_bench.py', camera, args.out / 'camera.json'),
        'logs': run('logs_bench.py', logs, args.out / 'logs.json'),
    }
    (args.out / 'results.json').write_text(json.dumps(results, indent=2))
    odom, scan = results['codec']
    cam, logs_result = results['camera'], results['logs']
    rows = [
        ('topic echo: Odometry decode+publish', f'{odom["bridge_decode_publish"]:,.0f}/s',
         '>= 20,000/s'),
        ('topic echo: LaserScan 720 decode+publish', f'{scan["bridge_decode_publish"]:,.0f}/s',
         '>= 5,000/s'),
        ('camera passthrough (~100 KB JPEG)',
         f'{cam["passthrough"]["frames_per_cpu_s"]:,.0f}/CPU-s', '>= 1,500/s'),
        ('camera decode 640x480 bgr8', f'{cam["decode_640x480"]["frames_per_cpu_s"]:,.0f}'
         '/CPU-s', '>= 100/s'),
        ('camera latency 8 robots x 30 fps, p99',
         f'{cam["latency_8x30fps"].get("p99_ms", float("nan")):.2f} ms', '<= 5 ms'),
        ('log forwarding', f'{logs_result["records_per_cpu_s"]:,.0f}/CPU-s '
         f'({logs_result["acknowledged"]:,} of {logs_result["published"]:,} acked)',
         '>= 20,000/s'),
    ]
    print(f'\n{"benchmark":44} {"measured":>34} {"target":>12}')
    for name, measured, target in rows:
        print(f'{name:44} {measured:>34} {target:>12}')
    print(f'\nresults: {args.out / "results.json"}')


if __name__ == '__main__':
    main()
