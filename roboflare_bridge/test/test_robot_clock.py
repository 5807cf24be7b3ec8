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
"""A robot's clock against this machine's: the estimate, and the restamp hooks (no ROS)."""

import random

import pytest
from roboflare_bridge.mirror.robot_clock import (
    BUCKET_S, ClockOffset, NS, RobotClock, split_ns, WINDOW_S,
)

START_NS = 1_800_000_000 * NS


def feed(offset, robot_offset_s, seconds, start_ns=START_NS, rate_hz=50, seed=1):
    """Send a robot's messages (delays 1-40 ms) through ``offset``; return the end time."""
    rng = random.Random(seed)
    receipt = start_ns
    for _ in range(int(seconds * rate_hz)):
        receipt += NS // rate_hz
        delay = rng.randint(1_000_000, 40_000_000)
        sent = receipt - delay
        offset.observe(receipt, sent + int(robot_offset_s * NS))
    return receipt


@pytest.mark.parametrize('robot_offset_s', [30.0, -2.0, 0.0, 1e-3])
def test_the_estimate_is_the_offset_within_the_fastest_delay(robot_offset_s):
    offset = ClockOffset()
    assert offset.offset_s is None
    feed(offset, robot_offset_s, 5)
    # The fastest of a window's messages was at most a few ms late: the estimate is low by it.
    assert robot_offset_s - 0.005 <= offset.offset_s <= robot_offset_s


def test_old_and_zero_stamps_do_not_move_the_estimate():
    live_only, mixed = ClockOffset(), ClockOffset()
    feed(live_only, 5.0, 4)

    class Mixed:
        def observe(self, receipt, stamp):
            mixed.observe(receipt, stamp)
            mixed.observe(receipt, receipt - 3600 * NS)  # a latched map stamped an hour ago
            mixed.observe(receipt, 0)  # no time at all
    feed(Mixed(), 5.0, 4)
    assert mixed.offset_ns == live_only.offset_ns
    assert mixed.samples == 2 * live_only.samples


def test_a_step_ahead_is_followed_at_once_and_a_step_back_within_the_window():
    offset = ClockOffset()
    end = feed(offset, 2.0, 4)
    end = feed(offset, 12.0, 0.1, start_ns=end)  # NTP moved the robot 10 s ahead
    assert offset.offset_s == pytest.approx(12.0, abs=0.05)
    stepped_at, samples = end, []
    for receipt in range(end, end + 6 * NS, NS // 50):  # then back by 10 s
        offset.observe(receipt, receipt - 5_000_000 + 2 * NS)
        samples.append((receipt - stepped_at, offset.offset_s))
    followed_after = min(at for at, estimate in samples if abs(estimate - 2.0) < 0.05
                         and all(abs(later - 2.0) < 0.05 for t, later in samples if t >= at))
    assert followed_after / NS <= WINDOW_S + BUCKET_S <= 5.0


def test_restamping_shifts_by_the_estimate_or_puts_the_receipt_time():
    clock = RobotClock('offset')
    hook = clock.hook()
    assert hook(100, 5) == (100, 5)  # no estimate yet: stamps as sent
    clock.received(START_NS, {'header': {'stamp': {'sec': START_NS // NS + 30,
                                                   'nanosec': 250_000_000}}})
    assert clock.offset.offset_ns == 30_250_000_000
    assert hook(START_NS // NS + 31, 0) == (START_NS // NS, 750_000_000)
    assert hook(0, 0) == (0, 0)  # "no time" stays so
    receipt = RobotClock('receipt')
    receipt.received(START_NS + 7, {'transforms': [
        {'header': {'stamp': {'sec': 5, 'nanosec': 1}}}]})
    assert receipt.offset.samples == 1  # a TF message's first transform is a sample
    assert receipt.hook()(5, 1) == (START_NS // NS, 7)
    assert RobotClock().hook() is None
    with pytest.raises(ValueError, match='restamp must be one of none, offset, receipt'):
        RobotClock('local')


def test_a_shift_is_held_to_the_range_of_a_stamp():
    assert split_ns(-5) == (-1, NS - 5)
    assert split_ns(1 << 80) == ((1 << 31) - 1, NS - 1)
    assert split_ns(-(1 << 80)) == (-(1 << 31), 0)


@pytest.mark.parametrize('msg', [
    None, [], 'x', {}, {'data': 1}, {'header': 5}, {'header': {'stamp': 'now'}},
    {'header': {'stamp': {'sec': 1.5, 'nanosec': 0}}}, {'transforms': []},
    {'transforms': [5]}, {'transforms': 'x'}, {'header': {'stamp': {'sec': True}}}])
def test_messages_without_a_usable_stamp_are_no_sample(msg):
    clock = RobotClock()
    clock.received(START_NS, msg)
    assert clock.offset.samples == 0 and clock.receipt_ns == START_NS
