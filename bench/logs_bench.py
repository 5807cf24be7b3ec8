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
Log forwarding benchmark: /rosout -> bridge -> logs/ws, acknowledged.

Publisher processes write rcl_interfaces/Log records to /rosout as fast as they can; a
bridge process forwards them (forward_logs) to an emulator process, which acknowledges
and stores them. Reports records acknowledged per second and per CPU-second of the bridge
process (= per core), and the latency from publication to acknowledgement is bounded by
the batch wait (0.25 s) plus a round trip.

    python bench/logs_bench.py [--seconds S] [--publishers N] [--json FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import httpx

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
BIN = os.path.dirname(sys.executable)

PUBLISHER = '''
import sys, time, rclpy
from rcl_interfaces.msg import Log
from roboflare_bridge.logs import rosout_qos
rclpy.init()
node = rclpy.create_node(sys.argv[1])
pub = node.create_publisher(Log, '/rosout', rosout_qos())
message = Log(level=Log.INFO, name=sys.argv[1], file='bench.py', function='run', line=1)
rate, seconds = float(sys.argv[3]), float(sys.argv[2])
started = time.monotonic()
i = 0
while i < rate * seconds:
    message.stamp = node.get_clock().now().to_msg()
    message.msg = f'benchmark record {i} with a typical length of text for a log line'
    pub.publish(message)
    i += 1
    if i % 100 == 0:  # pacing the offered load
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
print(i, flush=True)
'''


def cpu_seconds(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--publishers', type=int, default=2)
    parser.add_argument('--rate', type=float, default=20000.0,
                        help='records/s offered in total by the publishers')
    parser.add_argument('--json')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', '61')
    workdir = tempfile.mkdtemp(prefix='logs-bench-')
    emulator = subprocess.Popen([os.path.join(BIN, 'emulator'), '--port', '0', '--robots',
                                 '1', '--log-rate', '0.1'], stdout=subprocess.PIPE, text=True)
    url = emulator.stdout.readline().split()[-1]
    token = emulator.stdout.readline().strip()
    with open(os.path.join(workdir, 'token'), 'w') as out:
        out.write(token)
    bridge = subprocess.Popen([os.path.join(BIN, 'bridge'), '--ros-args',
                               '-p', f'base_url:={url}',
                               '-p', f'token_file:={workdir}/token',
                               '-p', 'forward_logs:=true', '-p', 'robot_id:=rbt_0001',
                               '-p', f'spool_dir:={workdir}/spool',
                               '-p', 'log_min_level:=info'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    headers = {'Authorization': f'Bearer {token}'}

    def acked():
        stats = httpx.get(url + '/_emulator/stats', headers=headers, timeout=10).json()
        return stats['uploaded_records'].get('rbt_0001', 0)
    time.sleep(3)  # bridge start-up and discovery, outside the measured window
    publishers = [subprocess.Popen([sys.executable, '-c', PUBLISHER, f'bench_pub_{i}',
                                    str(args.seconds), str(args.rate / args.publishers)],
                                   stdout=subprocess.PIPE, text=True)
                  for i in range(args.publishers)]
    start_acked, start_cpu, started = acked(), cpu_seconds(bridge.pid), time.monotonic()
    published = sum(int(p.stdout.readline() or 0) for p in publishers)
    # Let the bridge drain; stop when everything is acknowledged or acks stall for 2 s
    # (records the DDS writer overwrote before the bridge took them never arrive).
    last, last_change = acked(), time.monotonic()
    while last - start_acked < published and time.monotonic() - last_change < 2.0:
        time.sleep(0.1)
        now = acked()
        if now != last:
            last, last_change = now, time.monotonic()
    elapsed = last_change - started
    forwarded = last - start_acked
    cpu = cpu_seconds(bridge.pid) - start_cpu
    for process in [bridge, emulator, *publishers]:
        process.terminate()
        process.wait(10)
    result = {'offered_per_s': args.rate, 'published': published, 'acknowledged': forwarded,
              'records_per_s': forwarded / elapsed, 'bridge_cpu_s': cpu,
              'records_per_cpu_s': forwarded / cpu if cpu else 0.0,
              'cpu_s_per_1000': 1000 * cpu / forwarded if forwarded else 0.0}
    print(f'log forwarding at {args.rate:,.0f} records/s offered: {forwarded:,} of '
          f'{published:,} records acknowledged in '
          f'{elapsed:.1f} s = {result["records_per_s"]:,.0f}/s; bridge CPU {cpu:.1f} s = '
          f'{result["records_per_cpu_s"]:,.0f} records per CPU-second   target >= 20,000')
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(result, out, indent=2)


if __name__ == '__main__':
    main()
