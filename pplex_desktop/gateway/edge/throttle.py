"""Throttling of wrong credentials per client address: admin secrets and API keys alike.

A sliding window of failures per address: after ``limit`` failures in ``window_s`` the address
waits until the oldest failure leaves the window, so someone who mistyped recovers within a
minute on their own, while guessing stays at ``limit`` tries a minute per address.
"""

from __future__ import annotations

from pplex_desktop.core.clock import Clock
from pplex_desktop.core.errors import RateLimitedError
from pplex_desktop.gateway.edge.ratelimit import SlidingWindowLimiter

WINDOW_S = 60.0


class FailureThrottle:
    def __init__(self, clock: Clock, *, limit: int, what: str, code: str) -> None:
        self.limit = limit
        self._what = what  # "wrong admin secrets", for the sentence
        self._code = code
        self._failures = SlidingWindowLimiter(clock, WINDOW_S)

    def throttled(self, client: str) -> float | None:
        """Seconds this address must wait, or None when it may try."""
        decision = self._failures.peek(client, self.limit)
        return None if decision.allowed else decision.retry_after_s

    def check(self, client: str) -> None:
        wait = self.throttled(client)
        if wait is not None:
            raise self.refusal(wait)

    def refusal(self, wait_s: float) -> RateLimitedError:
        return RateLimitedError(
            f"Too many {self._what} from this address ({self.limit} a minute at most); wait "
            f"{max(1, round(wait_s + 0.5))} s before trying again.",
            retry_after_s=wait_s,
            code=self._code,
        )

    def failed(self, client: str) -> None:
        self._failures.hit(client, self.limit)

    def forget_idle(self) -> int:
        return self._failures.forget_idle()
