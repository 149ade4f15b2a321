"""A sliding-log rate limiter: exact over every window, not just aligned minutes.

GCRA and fixed windows admit up to twice the limit across a window boundary; a user who
was promised 60 requests a minute gets exactly that here, in any 60 s span. The log holds at
most ``limit`` timestamps per bucket, so memory stays bounded by the limits configured.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from pplex_desktop.core.clock import Clock


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    window_s: float
    reset_s: float  # seconds until the oldest admitted request leaves the window
    retry_after_s: float  # 0 when allowed

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))

    def policy_header(self, name: str = "per-key") -> str:
        return f'"{name}";q={self.limit};w={int(self.window_s)}'

    def state_header(self, name: str = "per-key") -> str:
        return f'"{name}";r={self.remaining};t={math.ceil(self.reset_s)}'


class SlidingWindowLimiter:
    def __init__(self, clock: Clock, window_s: float = 60.0) -> None:
        self._clock = clock
        self.window_s = window_s
        self._logs: dict[Hashable, deque[float]] = {}

    def _log(self, bucket: Hashable, now: float) -> deque[float]:
        log = self._logs.get(bucket)
        if log is None:
            log = self._logs[bucket] = deque()
        cutoff = now - self.window_s
        while log and log[0] <= cutoff:
            log.popleft()
        return log

    def _decide(self, log: deque[float], limit: int, now: float, *, admit: bool) -> Decision:
        if len(log) < limit:
            if admit:
                log.append(now)
            reset = (log[0] + self.window_s - now) if log else 0.0
            return Decision(True, limit, limit - len(log), self.window_s, reset, 0.0)
        # The request that would free a slot is the one `limit` places from the newest.
        freeing = log[len(log) - limit]
        wait = freeing + self.window_s - now
        return Decision(False, limit, 0, self.window_s, wait, wait)

    def hit(self, bucket: Hashable, limit: int) -> Decision:
        """Count one request against ``bucket`` if the limit allows it."""
        now = self._clock.monotonic()
        return self._decide(self._log(bucket, now), limit, now, admit=True)

    def peek(self, bucket: Hashable, limit: int) -> Decision:
        now = self._clock.monotonic()
        return self._decide(self._log(bucket, now), limit, now, admit=False)

    def forget_idle(self) -> int:
        """Drop buckets with nothing in the window; call now and then to bound memory."""
        now = self._clock.monotonic()
        idle = [b for b, log in self._logs.items() if not log or log[-1] <= now - self.window_s]
        for bucket in idle:
            del self._logs[bucket]
        return len(idle)

    def __len__(self) -> int:
        return len(self._logs)
