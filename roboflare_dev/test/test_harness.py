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
"""The test harness's rclpy node reports a dead executor instead of letting tests time out."""

import asyncio
import threading
import time

import pytest
from roboflare_dev.testing import Collector, RosHarness, run_in_virtual_time
from std_msgs.msg import String


@pytest.fixture
def harness():
    own = RosHarness()
    yield own
    own.close()


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_a_callback_that_raises_is_reported_by_check(harness):
    harness.check()  # alive
    fired = threading.Event()

    def explode():
        fired.set()
        raise ValueError('callback bug')
    harness.node.create_timer(0.01, explode)
    assert fired.wait(10)
    with pytest.raises(RuntimeError, match='executor died') as raised:
        harness.check()
    assert isinstance(raised.value.__cause__, ValueError)


def test_destroy_runs_on_the_executor_and_the_node_keeps_spinning(harness):
    received = Collector()
    publisher = harness.node.create_publisher(String, '/harness_test', 10)
    subscription = harness.node.create_subscription(String, '/harness_test', received, 10)
    timer = harness.node.create_timer(0.001, lambda: publisher.publish(String(data='x')))
    received.count(10, 10)
    harness.destroy(subscription)
    assert subscription not in list(harness.node.subscriptions)
    harness.destroy(timer)
    harness.check()


def test_virtual_time_runs_timers_in_order_without_waiting_for_them():
    async def scenario():
        loop = asyncio.get_running_loop()
        fired = []
        for delay in (30.0, 10.0, 20.0):
            loop.call_later(delay, lambda d=delay: fired.append((d, loop.time())))
        began = loop.time()
        await asyncio.sleep(25.0)
        halfway = list(fired)
        await asyncio.sleep(10.0)
        return halfway, fired, loop.time() - began
    started = time.monotonic()
    halfway, fired, elapsed = run_in_virtual_time(scenario())
    assert halfway == [(10.0, 10.0), (20.0, 20.0)]
    assert fired[-1] == (30.0, 30.0) and elapsed == 35.0
    assert time.monotonic() - started < 5.0  # 35 virtual seconds, not real ones
