"""Submissions rate-limited per principal: a token bucket each (``submit_rate`` jobs a second,
``submit_burst`` at once). A job costs one; a batch costs its number of jobs. A request is let
in when the bucket holds as many as it costs, or is full (so a batch bigger than the burst
is not refused forever): it may then go into debt, which later submissions wait out, so over
time no principal submits faster than the rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float


class RateLimited(Exception):
    """Too many submissions: try again after ``retry_after_s``."""

    def __init__(self, principal: str, rate: float, burst: int, retry_after_s: int) -> None:
        super().__init__(
            f"too many submissions by {principal}: at most {rate:g} jobs/s with bursts of "
            f"{burst} (settings submit_rate, submit_burst); retry after {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class SubmitLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        """Jobs a second per principal; 0: no limit."""
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        """One per principal: as many as there are tokens (plus ``anonymous``)."""

    def admit(self, principal: str, cost: int = 1) -> None:
        """Take ``cost`` from the principal's bucket, or raise RateLimited."""
        if self.rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = _Bucket(float(self.burst), now)
        bucket.level = min(float(self.burst), bucket.level + (now - bucket.at) * self.rate)
        bucket.at = now
        needed = min(float(cost), float(self.burst))
        if bucket.level < needed:
            wait = math.ceil((needed - bucket.level) / self.rate)
            raise RateLimited(principal, self.rate, self.burst, max(1, wait))
        bucket.level -= cost
