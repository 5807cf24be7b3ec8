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
Memory soak: the bridge mirroring 10 robots for 5 minutes; its RSS must stay flat (10 %).

Everything flows: every simulated topic, cameras at 10 fps (this process subscribes to the
compressed and decoded images, so the bridge decodes), each robot's logs republished. RSS
is read after a warm-up (connections, publishers, first frames) and then every minute.

    python bench/soak.py [--robots N] [--minutes M] [--warmup S] [--json FILE]
"""

import argparse
import json
import sys
import time
from typing import Any, Dict

from fleet_bench import LocalSubscriber, mirrored_topics
from harness import BridgeProcess, EmulatorProcess, robot_ids, ros_environment
from roboflare_dev.testing import wait_until_true

LIMIT = 0.10  # the "flat": within 10 % of the start


def soak(robots: int, minutes: float, warmup_s: float) -> Dict[str, Any]:
    emulator = EmulatorProcess(robots, camera_fps=10, log_rate=2.0)
    bridge = BridgeProcess(emulator, robots=robot_ids(robots))
    names = emulator.robot_names()
    topics = [topic for kind in ('echo', 'compressed', 'decoded')
              for topic in mirrored_topics(kind, names)]
    subscriber = LocalSubscriber(topics)
    try:
        wait_until_true(lambda: {t for t, _ in topics} <= subscriber.seen, 90,
                        'every mirrored topic to deliver')
        time.sleep(warmup_s)
        start_kb = bridge.rss_kb()
        print(f'start: {start_kb:,} kB', flush=True)
        samples = [start_kb]
        interval = minutes * 60 / max(1, round(minutes))
        for minute in range(1, max(1, round(minutes)) + 1):
            time.sleep(interval)
            samples.append(bridge.rss_kb())
            print(f'after {minute * interval / 60:.1f} min: {samples[-1]:,} kB', flush=True)
        peak_kb, messages = bridge.peak_rss_kb(), subscriber.tally.messages
    finally:
        subscriber.close()
        bridge.close()
        emulator.close()
    growth = (samples[-1] - start_kb) / start_kb
    print(f'end: {samples[-1]:,} kB ({growth:+.1%}), peak {peak_kb:,} kB, '
          f'{messages:,} messages delivered; limit +{LIMIT:.0%}')
    return {'robots': robots, 'minutes': minutes, 'rss_kb': samples, 'start_kb': start_kb,
            'end_kb': samples[-1], 'peak_kb': peak_kb, 'growth': growth,
            'flat': growth <= LIMIT, 'messages': messages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--robots', type=int, default=10)
    parser.add_argument('--minutes', type=float, default=5.0)
    parser.add_argument('--warmup', type=float, default=30.0, help='seconds before the start')
    parser.add_argument('--json')
    args = parser.parse_args()
    ros_environment(74)
    result = soak(args.robots, args.minutes, args.warmup)
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(result, out, indent=2)
    return 0 if result['flat'] else 1


if __name__ == '__main__':
    sys.exit(main())
