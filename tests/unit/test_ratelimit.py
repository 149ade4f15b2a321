from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.gateway.edge.ratelimit import SlidingWindowLimiter


@given(
    st.integers(min_value=1, max_value=20),
    st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), min_size=1, max_size=300),
)
def test_never_more_than_the_limit_in_any_window(limit: int, gaps: list[float]) -> None:
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowLimiter(clock, window_s=60.0)
    admitted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        now = clock.monotonic()
        decision = limiter.hit("k", limit)
        in_window = [t for t in admitted if t > now - 60.0]
        # Exact: refuse only when the trailing window is full, admit otherwise.
        assert decision.allowed == (len(in_window) < limit)
        if decision.allowed:
            admitted.append(now)
        else:
            oldest_blocking = in_window[len(in_window) - limit]
            assert abs(decision.retry_after_s - (oldest_blocking + 60.0 - now)) < 1e-6
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u < t + 60.0) <= limit


def test_headers_follow_the_ietf_draft() -> None:
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowLimiter(clock)
    first = limiter.hit("k", 3)
    assert first.policy_header() == '"per-key";q=3;w=60'
    assert first.state_header() == '"per-key";r=2;t=60'
    clock.advance(10)
    limiter.hit("k", 3)
    limiter.hit("k", 3)
    refused = limiter.hit("k", 3)
    assert not refused.allowed and refused.retry_after_header == "50"


def test_idle_buckets_are_forgotten() -> None:
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowLimiter(clock)
    for i in range(100):
        limiter.hit(i, 5)
    clock.advance(61)
    assert limiter.forget_idle() == 100 and len(limiter) == 0
