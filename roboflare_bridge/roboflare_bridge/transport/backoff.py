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
"""Exponential backoff with full jitter, shared by HTTP retries and stream reconnects."""

from __future__ import annotations

import random
from typing import Optional


class Backoff:
    """
    Delays that double from ``initial`` up to ``cap``, each drawn uniformly below the bound.

    Full jitter spreads the reconnects of a fleet of bridges after an outage instead of
    having them all knock at the same instant.
    """

    def __init__(self, initial: float = 0.25, cap: float = 30.0, factor: float = 2.0,
                 rng: Optional[random.Random] = None) -> None:
        if not 0 < initial <= cap or factor < 1:
            raise ValueError('backoff needs 0 < initial <= cap and factor >= 1')
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def bound(self) -> float:
        """Return the upper bound of the next delay."""
        return min(self.cap, self.initial * self.factor ** self.attempts)

    def next_delay(self) -> float:
        """Return the next delay and count the attempt."""
        bound = self.bound()
        self.attempts += 1
        # Never below a tenth of the bound: a zero delay would be a tight loop.
        return self._rng.uniform(bound / 10, bound)

    def reset(self) -> None:
        """Start again from ``initial`` (after a healthy period)."""
        self.attempts = 0


RETRY_INITIAL_S = 0.5
RETRY_CAP_S = 30.0


def retry_backoff() -> Backoff:
    """Return the backoff of every long-lived retry: streams, robots, refused log batches."""
    return Backoff(initial=RETRY_INITIAL_S, cap=RETRY_CAP_S)
