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
A node that logs numbered records at a steady rate: ``talker.py COUNT RATE [NAME]``.

Starts once a /rosout subscriber (the bridge) is in the graph. Also logs DEBUG records
(below the forwarder's level) and records from a second node, ``noisy``, that the tests
list in log_ignore_nodes. Prints "done" when finished.
"""

import sys
import time

import rclpy


def main() -> None:
    count, rate = int(sys.argv[1]), float(sys.argv[2])
    name = sys.argv[3] if len(sys.argv) > 3 else 'talker'
    rclpy.init()
    node = rclpy.create_node(name)
    noisy = rclpy.create_node('noisy')
    node.get_logger().set_level(rclpy.logging.LoggingSeverity.DEBUG)
    # Log once a bridge reads /rosout: what is logged before that survives only in the
    # history (1000 records), which a fast talker outruns while discovery takes its time.
    deadline = time.monotonic() + 30
    while node.count_subscribers('/rosout') == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the graph of peer processes, with a deadline
    started = time.monotonic()
    for i in range(count):
        node.get_logger().info(f'record {i}')
        if i % 100 == 0:
            node.get_logger().debug(f'debug {i}')
            noisy.get_logger().warning(f'noise {i}')
        # Pacing the load this peer generates (not synchronisation).
        delay = started + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print('done', flush=True)
    time.sleep(30)  # keep /rosout's history available to a restarted bridge


if __name__ == '__main__':
    main()
