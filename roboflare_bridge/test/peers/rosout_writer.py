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
Publishes rcl_interfaces/msg/Log on /rosout with chosen stamps, as a node's rcl or a script.

``rosout_writer.py NODE LOGGER transient_local|volatile`` then commands on stdin, one a
line, each answered "done" on stdout once published:

- ``log COUNT RATE STAMP PREFIX [OPTIONS]``: COUNT records "<PREFIX> <i>" at RATE per
  second, stamped ``now``, ``now-<seconds>`` (a clock stepped back) or ``zero``; options:
  ``same`` (every record "<PREFIX>", one source line: a driver failing in a loop),
  ``error-every=N`` (every Nth record at ERROR level, the others INFO);
- ``wait_reader``: until some /rosout reader (a bridge's) has matched this publisher;
- ``wait_match``: until a volatile /rosout reader not matched before (a restarted bridge's)
  has matched this publisher: a volatile publisher's earlier records reach nobody.

The transient-local publisher keeps rcl's /rosout history (1000 records, 10 s), so a
restarted bridge gets it replayed.
"""

import sys
import time

from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
import rclpy
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def stamp_for(spec: str) -> float:
    if spec == 'zero':
        return 0.0
    if spec.startswith('now-'):
        return time.time() - float(spec[4:])
    return time.time()


def wait_for_new_reader(node, publisher, known: set, timeout: float = 30) -> set:
    """Wait until a volatile /rosout reader not in ``known`` is matched; return all seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readers = {bytes(info.endpoint_gid) for info
                   in node.get_subscriptions_info_by_topic('/rosout')
                   if info.qos_profile.durability == DurabilityPolicy.VOLATILE}
        # A killed bridge's reader may linger in the graph: every reader seen must match.
        if readers - known and publisher.get_subscription_count() >= len(readers):
            return known | readers
        time.sleep(0.05)  # polling the graph of peer processes, with a deadline
    raise TimeoutError('no new volatile /rosout reader matched')


def main() -> None:
    node_name, logger, durability = sys.argv[1:4]
    rclpy.init()
    node = rclpy.create_node(node_name)
    qos = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=(DurabilityPolicy.TRANSIENT_LOCAL
                                 if durability == 'transient_local'
                                 else DurabilityPolicy.VOLATILE),
                     lifespan=Duration(seconds=10))
    publisher = node.create_publisher(Log, '/rosout', qos)
    readers_matched_before: set = set()
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ['wait_reader']:
            deadline = time.monotonic() + 30
            while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the graph of peer processes, with a deadline
        elif words[:1] == ['wait_match']:
            readers_matched_before = wait_for_new_reader(node, publisher,
                                                         readers_matched_before)
        elif words[:1] == ['log']:
            count, rate, spec, prefix = int(words[1]), float(words[2]), words[3], words[4]
            options = words[5:]
            same = 'same' in options
            error_every = next((int(o.split('=')[1]) for o in options
                                if o.startswith('error-every=')), 0)
            started = time.monotonic()
            for i in range(count):
                now = stamp_for(spec)
                error = error_every and i % error_every == error_every - 1
                publisher.publish(Log(
                    stamp=Time(sec=int(now), nanosec=int(now % 1 * 1e9)),
                    level=Log.ERROR if error else Log.INFO, name=logger,
                    msg=prefix if same else f'{prefix} {i}', file='writer.py',
                    function='main', line=7 if same else i % 1000))
                # Pacing the load this peer generates (not synchronisation).
                delay = started + (i + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        print('done', flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
