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
A remote robot's clock measured against this machine's, and stamps rewritten by it.

Robots on LTE links often have no time sync, or a clock that NTP steps long after boot:
their stamps put the data in rviz's future (dropped: "extrapolation into the future") or
its past. Each message that arrives with a header stamp is one sample of ``receipt -
stamp``: its delay plus how far this machine's clock is ahead of the robot's. The fastest
message bounds the delay best, so the estimate is the lower envelope (the minimum) over a
sliding window of WINDOW_S: messages stamped long ago (latched maps, replays) lie above it
and do not count, zero stamps are ignored, and a step of the robot's clock is followed as
soon as the samples from before it have left the window (a step ahead at once, a step back
within WINDOW_S + BUCKET_S). The estimate's error is the fastest message's delay.

``restamp`` rewrites stamps: ``offset`` shifts each header stamp by the estimate (relative
timing kept exactly; a zero stamp stays zero, and nothing moves until there is an
estimate), ``receipt`` puts the time the frame arrived. The CDR writer and the codec apply
the hook to every ``std_msgs/Header`` they write (cdr_writer.py, json_codec.py).

Pure Python, no ROS: everything here runs on the asyncio loop.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Optional, Tuple

from ..parameters import RESTAMP_MODES

BUCKET_S = 0.5
WINDOW_S = 3.0
NS = 1_000_000_000
_BUCKET_NS = int(BUCKET_S * NS)
_WINDOW_BUCKETS = int(WINDOW_S / BUCKET_S)
_NONE = 1 << 80  # above any lag: an empty bucket
# builtin_interfaces/Time.sec is an int32: a shifted stamp is held to its range.
_MIN_NS, _MAX_NS = -(1 << 31) * NS, ((1 << 31) - 1) * NS + NS - 1

Restamp = Callable[[int, int], Tuple[int, int]]  # (sec, nanosec) -> (sec, nanosec)


class ClockOffset:
    """The lower envelope of ``receipt - stamp`` over a sliding window, in buckets."""

    def __init__(self) -> None:
        self.offset_ns: Optional[int] = None  # the robot's clock minus this one's
        self.samples = 0
        self._done: Deque[Tuple[int, int]] = deque()  # (bucket, its least lag), in order
        self._bucket = -1
        self._least_done = _NONE
        self._least_now = _NONE

    def observe(self, receipt_ns: int, stamp_ns: int) -> None:
        """Take one message: received at ``receipt_ns``, stamped ``stamp_ns`` (both in ns)."""
        if stamp_ns <= 0:
            return  # no time (zero), or one from before 1970: not a clock reading
        bucket = receipt_ns // _BUCKET_NS
        if bucket != self._bucket:
            self._rotate(bucket)
        lag = receipt_ns - stamp_ns
        if lag < self._least_now:
            self._least_now = lag
        self.offset_ns = -min(self._least_now, self._least_done)
        self.samples += 1

    @property
    def offset_s(self) -> Optional[float]:
        return None if self.offset_ns is None else self.offset_ns / NS

    def _rotate(self, bucket: int) -> None:
        if self._least_now != _NONE:
            self._done.append((self._bucket, self._least_now))
        while self._done and self._done[0][0] <= bucket - _WINDOW_BUCKETS:
            self._done.popleft()
        self._least_done = min((least for _, least in self._done), default=_NONE)
        self._bucket, self._least_now = bucket, _NONE


class RobotClock:
    """One robot's clock offset and the restamping asked for (the asyncio loop's)."""

    def __init__(self, mode: str = 'none') -> None:
        if mode not in RESTAMP_MODES:
            raise ValueError(f'restamp must be one of {", ".join(RESTAMP_MODES)}')
        self.mode = mode
        self.offset = ClockOffset()
        self.receipt_ns = 0  # when the frame being mirrored arrived

    def received(self, receipt_ns: int, msg: Any, sample: bool = True) -> None:
        """
        Take a message object as it arrived: its receipt is kept, its stamp is a sample.

        ``sample`` is False for a latched topic's: stamped once, long ago, and sent again to
        each new subscriber, its stamp says nothing of the robot's clock now.
        """
        self.receipt_ns = receipt_ns
        if not sample:
            return
        stamp = _stamp_ns(msg)
        if stamp is not None:
            self.offset.observe(receipt_ns, stamp)

    def hook(self) -> Optional[Restamp]:
        """Return what rewrites a header's stamp under this mode (None: nothing does)."""
        if self.mode == 'offset':
            return self._shifted
        if self.mode == 'receipt':
            return self._at_receipt
        return None

    def _shifted(self, sec: int, nanosec: int) -> Tuple[int, int]:
        # Called for every header of every message: the common case inline.
        offset = self.offset.offset_ns
        if offset is None or not (sec or nanosec):
            return sec, nanosec
        total = sec * NS + nanosec - offset
        if _MIN_NS <= total <= _MAX_NS:
            return divmod(total, NS)
        return split_ns(total)

    def _at_receipt(self, sec: int, nanosec: int) -> Tuple[int, int]:
        if not (sec or nanosec):
            return sec, nanosec
        return split_ns(self.receipt_ns)


def split_ns(total_ns: int) -> Tuple[int, int]:
    """Return (sec, nanosec) of a time in nanoseconds, held to Time's range."""
    sec, nanosec = divmod(min(max(total_ns, _MIN_NS), _MAX_NS), NS)
    return sec, nanosec


def _stamp_ns(msg: Any) -> Optional[int]:
    """Return the stamp of a message object's header (a TF message's first), if it has one."""
    if type(msg) is not dict:
        return None
    header = msg.get('header')
    if header is None:
        transforms = msg.get('transforms')
        if type(transforms) is not list or not transforms or type(transforms[0]) is not dict:
            return None
        header = transforms[0].get('header')
    if type(header) is not dict:
        return None
    stamp = header.get('stamp')
    if type(stamp) is not dict:
        return None
    sec, nanosec = stamp.get('sec', 0), stamp.get('nanosec', 0)
    if type(sec) is not int or type(nanosec) is not int:
        return None
    return sec * NS + nanosec


__all__ = ['BUCKET_S', 'ClockOffset', 'NS', 'Restamp', 'RESTAMP_MODES', 'RobotClock', 'split_ns',
           'WINDOW_S']
