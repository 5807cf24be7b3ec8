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
``make bench``: the fleet table, the micro-benchmarks and the memory soak, in one run.

Prints each part as it finishes, then one summary; writes bench-results/results.json.

    python bench/run.py [--smoke] [--out DIR]     (--smoke: the seconds-long run the tests use)
    python bench/run.py --markdown A/results.json [B/results.json]   (README's table, A / B)
"""

import argparse
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import time

HERE = Path(__file__).resolve().parent

# (script, full-run arguments, smoke arguments or None: another part's smoke run covers it)
PARTS = {
    'codec': ('codec_bench.py', ['--seconds', '5'], ['--seconds', '0.15']),
    'camera': ('camera_bench.py', ['--seconds', '5'], ['--seconds', '0.5', '--frames', '200']),
    'websocket': ('ws_bench.py', ['--seconds', '3'], ['--seconds', '0.05']),
    'fleet': ('fleet_bench.py', ['--seconds', '10'],
              ['--robots', '2', '--seconds', '1', '--flood-rate-scale', '3',
               '--flood-camera-fps', '60', '--flood-decoded-fps', '30',
               '--flood-log-rate', '2000']),
    # 50 robots at nominal rates, one bridge process and two sharing them (the smoke run
    # has its one-process cell from the fleet part, and restamps in its two-process cell:
    # that one cell checks both options).
    'shards': ('fleet_bench.py', ['--kinds', 'echo', '--robots', '50', '--shards', '1,2',
                                  '--seconds', '10'],
               ['--kinds', 'echo', '--robots', '2', '--shards', '2', '--restamp', 'offset',
                '--seconds', '1', '--flood-rate-scale', '3']),
    # What restamping every header costs: topic echo at 10 robots, restamp none and offset.
    'restamp': ('fleet_bench.py', ['--kinds', 'echo', '--robots', '10', '--restamp',
                                   'none,offset', '--seconds', '10'], None),
    # 50 robots at nominal rates: what streams, by what is watched (mirror_on_demand).
    'demand': ('demand_bench.py', ['--robots', '50', '--seconds', '10'],
               ['--robots', '2', '--seconds', '1', '--warmup', '0.5', '--cells',
                'nothing watched,one robot watched,on demand off']),
    'soak': ('soak.py', ['--minutes', '5'],
             ['--robots', '2', '--minutes', '0.05', '--warmup', '1']),
}


def machine() -> dict:
    model = ''
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            model = next(line.split(':', 1)[1].strip() for line in cpuinfo
                         if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpus': os.cpu_count(), 'cpu': model, 'python': platform.python_version(),
            'distro': os.environ.get('DISTRO', ''), 'date': time.strftime('%Y-%m-%d')}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--smoke', action='store_true')
    parser.add_argument('--out', type=Path, default=Path('bench-results'))
    parser.add_argument('--markdown', type=Path, nargs='+', metavar='RESULTS')
    parser.add_argument('--parts', default=','.join(PARTS),
                        help='run only these; the others keep their last results in --out')
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table([json.loads(path.read_text())['fleet'] for path in args.markdown]))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = {'machine': machine()}
    failed = []
    selected = args.parts.split(',')
    unknown = set(selected) - set(PARTS)
    if unknown:
        parser.error(f'unknown parts {sorted(unknown)}; choose from {list(PARTS)}')
    for part, (script, full, smoke) in PARTS.items():
        out = args.out / f'{part}.json'
        if part not in selected:
            results[part] = json.loads(out.read_text()) if out.exists() else None
            continue
        out.unlink(missing_ok=True)  # a failed part must not show an older run's figures
        if args.smoke and smoke is None:  # another part's smoke run covers it
            results[part] = None
            continue
        print(f'\n== {part}: {script} {" ".join(smoke if args.smoke else full)}', flush=True)
        code = subprocess.run([sys.executable, str(HERE / script),
                               *(smoke if args.smoke else full), '--json', str(out)]).returncode
        if code != 0:
            failed.append(part)
        results[part] = json.loads(out.read_text()) if out.exists() else None
    (args.out / 'results.json').write_text(json.dumps(results, indent=2))
    summary(results)
    print(f'\nresults: {args.out / "results.json"}')
    if failed:
        print(f'failed or missed a limit: {", ".join(failed)}')
    return 1 if failed else 0


def summary(results: dict) -> None:
    m = results['machine']
    print(f'\n== summary ({m["cpus"]} CPUs, {m["cpu"]}, Python {m["python"]})')
    if results.get('codec'):
        for r in results['codec']['types']:
            print(f'codec {r["type"]}: {r["bridge_decode_publish"]:,}/s decode+publish, '
                  f'{r["bridge_decode_publish"] / r["naive_introspection"]:.2f}x naive; '
                  f'decode {r["bridge_decode_only"]:,}/s, {r["decode_vs_floor"]:.2f}x floor')
        big_map = results['codec']['map']
        print(f'codec {big_map["type"]}: parse {big_map["parse_ms"]} ms, conversion '
              f'{big_map["convert_ms"]} ms, publish {big_map["publish_ms"]} ms')
    if results.get('camera'):
        c = results['camera']
        print(f'camera: passthrough {c["passthrough"]["frames_per_cpu_s"]:,.0f} frames/CPU-s, '
              f'decode {c["decode_640x480"]["frames_per_cpu_s"]:,.0f} frames/CPU-s')
    if results.get('websocket'):
        for r in results['websocket']['kinds']:
            print(f'websocket receive, {r["kind"]}: {r["direct_us"]} us per frame, '
                  f'{r["direct_vs_parser"]:.2f}x websockets\' parser '
                  f'({r["websockets_parser_us"]} us)')
    if results.get('fleet'):
        from fleet_bench import print_table
        print_table(results['fleet'])
    if results.get('shards'):
        from fleet_bench import print_table
        print(f'\n{results["shards"][0]["robots"]} robots at nominal rates, by bridge '
              'processes sharing them:')
        print_table(results['shards'])
    if results.get('restamp'):
        from fleet_bench import print_table
        print('\ntopic echo, restamp none and offset side by side:')
        print_table(results['restamp'])
    if results.get('demand'):
        from demand_bench import print_table as print_demand
        print_demand(results['demand'])
    if results.get('soak'):
        s = results['soak']
        print(f'\nsoak, {s["robots"]} robots for {s["minutes"]} min: RSS {s["start_kb"]:,} kB '
              f'-> {s["end_kb"]:,} kB ({s["growth"]:+.1%}), peak {s["peak_kb"]:,} kB')


def markdown_table(runs: list) -> str:
    """Return the fleet table in Markdown, each figure as run A / run B / ..."""
    from fleet_bench import KINDS

    def cell(kind, robots, figure):
        values = []
        for cells in runs:
            found = next((c for c in cells if c['kind'] == kind and c['robots'] == robots), {})
            values.append(figure(found) if 'throughput' in found else 'n/a')
        return ' / '.join(values)
    rows = ['| stream kind | robots | messages/s | MB/s | latency p50 (ms) | latency p99 (ms) '
            '| CPU s per 1,000 messages | floor | x floor | peak RSS (MB) |',
            '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']

    def floor(c, ratio=False):
        value = c['throughput'].get('floor_cpu_s_per_1000')
        if not value:
            return '-'
        return f'{c["throughput"]["cpu_s_per_1000"] / value:.1f}' if ratio else f'{value:.3f}'

    keys = sorted({(c['kind'], c['robots']) for cells in runs for c in cells},
                  key=lambda key: (list(KINDS).index(key[0]), key[1]))
    for kind, robots in keys:
        rows.append(' | '.join([
            f'| {KINDS[kind]}', str(robots),
            cell(kind, robots, lambda c: f'{c["throughput"]["messages_per_s"]:,.0f}'),
            cell(kind, robots, lambda c: f'{c["throughput"]["mb_per_s"]:.1f}'),
            cell(kind, robots, lambda c: f'{c["latency"]["p50_ms"]:.1f}'),
            cell(kind, robots, lambda c: f'{c["latency"]["p99_ms"]:.1f}'),
            cell(kind, robots, lambda c: f'{c["throughput"]["cpu_s_per_1000"]:.3f}'),
            cell(kind, robots, floor), cell(kind, robots, lambda c: floor(c, ratio=True)),
            cell(kind, robots, lambda c: f'{c["peak_rss_mb"]:.0f}')]) + ' |')
    return '\n'.join(rows)


if __name__ == '__main__':
    sys.exit(main())
