"""The playback jitter buffer: silence on underrun, bounded delay under bursty arrivals."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pplex_desktop.audio.jitter import JitterBuffer
from pplex_desktop.moshi.codec import FRAME_SAMPLES

F = FRAME_SAMPLES


def ramp(start: int, n: int) -> np.ndarray:
    """Distinct positive values, so every sample's identity survives the trip."""
    return (np.arange(start, start + n, dtype=np.float64) + 1).astype(np.float32)


def test_prebuffers_to_the_target_before_playing() -> None:
    jb = JitterBuffer(target_ms=160)
    jb.push(ramp(0, F))
    assert not jb.pull(F).any(), "one frame is below the 2-frame target: still silent"
    assert jb.stats().underruns == 0, "waiting for the first audio is not an underrun"
    jb.push(ramp(F, F))
    out = jb.pull(F)
    np.testing.assert_array_equal(out, ramp(0, F))
    assert jb.stats().depth_ms == pytest.approx(80.0)


def test_underrun_gives_silence_counts_once_and_prebuffers_again() -> None:
    jb = JitterBuffer(target_ms=160)
    jb.push(ramp(0, 2 * F))
    jb.pull(F)
    jb.pull(F // 2)
    out = jb.pull(F)  # only half a frame left
    np.testing.assert_array_equal(out[: F // 2], ramp(F + F // 2, F // 2))
    assert not out[F // 2 :].any()
    assert jb.stats().underruns == 1
    assert not jb.pull(F).any()
    assert jb.stats().underruns == 1, "silence while prebuffering again is the same underrun"
    jb.push(ramp(10 * F, F))
    assert not jb.pull(F).any(), "one frame after an underrun is not enough to restart"
    jb.push(ramp(11 * F, F))
    np.testing.assert_array_equal(jb.pull(F), ramp(10 * F, F))
    stats = jb.stats()
    assert stats.underruns == 1
    assert stats.played_samples == 2 * F + F


def test_a_late_burst_is_caught_up_by_dropping_the_oldest() -> None:
    jb = JitterBuffer(target_ms=160, tolerance_ms=80)
    jb.push(ramp(0, 2 * F))
    jb.pull(F)
    # The network stalls, then five frames arrive at once.
    jb.push(ramp(2 * F, 5 * F))
    stats = jb.stats()
    assert stats.depth_ms == pytest.approx(160.0), "back to the target, not the limit"
    assert stats.dropped_samples == 4 * F
    # What plays next is the newest audio: the last two frames of the burst.
    np.testing.assert_array_equal(jb.pull(2 * F), ramp(5 * F, 2 * F))


def test_steady_arrivals_never_drop() -> None:
    jb = JitterBuffer(target_ms=160, tolerance_ms=80)
    pushed = 0
    for _ in range(200):
        jb.push(ramp(pushed, F))
        pushed += F
        for _ in range(4):  # a sound card asking for 20 ms at a time
            jb.pull(F // 4)
    stats = jb.stats()
    assert stats.dropped_samples == 0
    assert stats.underruns == 0


def test_gain_applies_to_what_plays() -> None:
    jb = JitterBuffer(target_ms=80)
    jb.push(np.full(F, 0.5, dtype=np.float32))
    jb.gain = 0.3
    np.testing.assert_allclose(jb.pull(F), 0.15, rtol=1e-6)


def test_pull_into_a_strided_view_like_a_stereo_callback() -> None:
    jb = JitterBuffer(target_ms=80)
    jb.push(ramp(0, F))
    outdata = np.full((F, 2), -1.0, dtype=np.float32)
    jb.pull_into(outdata[:, 0])
    np.testing.assert_array_equal(outdata[:, 0], ramp(0, F))
    assert (outdata[:, 1] == -1.0).all()


def test_wraps_around_the_ring_many_times() -> None:
    jb = JitterBuffer(target_ms=80)
    got = []
    pushed = 0
    for i in range(2_000):
        n = 1_000 + (i * 37) % 900
        jb.push(ramp(pushed, n))
        pushed += n
        got.append(jb.pull(n))
    out = np.concatenate(got)
    audible = out[out != 0]
    assert np.all(np.diff(audible) == 1), "samples come out in order, none twice"
    assert jb.stats().dropped_samples == 0


def test_target_is_adjustable_and_validated() -> None:
    jb = JitterBuffer(target_ms=160)
    jb.target_ms = 240
    assert jb.stats().target_ms == pytest.approx(240)
    with pytest.raises(ValueError, match="between"):
        jb.target_ms = 5
    jb.push(ramp(0, 2 * F))
    assert not jb.pull(F).any(), "two frames are below the new 3-frame target"


def test_a_push_longer_than_the_ring_keeps_the_newest() -> None:
    jb = JitterBuffer(target_ms=80)
    jb.push(ramp(0, 200_000))
    stats = jb.stats()
    assert stats.depth_ms == pytest.approx(80.0)
    np.testing.assert_array_equal(jb.pull(F), ramp(200_000 - F, F))


def test_concurrent_push_and_pull_keep_order() -> None:
    """A producer thread and a consumer thread, as with the loop and the PortAudio callback.

    However the two are scheduled, every sample comes out once and in order. The end is not
    left to luck: a consumer that ran the buffer dry waits for the target depth again, so a
    last frame shorter than the target is held (by design: see the file player, which pads its
    end with silence for this). The producer pads the same way and says when it is done; the
    consumer stops only once it is done and the buffer is empty."""
    # Wide and unsettled: keep every sample although the producer runs ahead.
    target_ms = 160
    jb = JitterBuffer(target_ms=target_ms, tolerance_ms=10_000 / 24, settle=False)
    total = 100 * F
    got: list[np.ndarray] = []
    done = threading.Event()
    deadline = time.monotonic() + 60

    def consume() -> None:
        out = np.empty(480, dtype=np.float32)
        while time.monotonic() < deadline:
            jb.pull_into(out)
            # Only audible blocks are kept: a consumer outrunning the producer pulls silence
            # in a tight loop, and keeping that would grow without bound on a busy machine.
            if out.any():
                got.append(out.copy())
            elif done.is_set() and jb.depth == 0:
                return

    consumer = threading.Thread(target=consume)
    consumer.start()
    for start in range(0, total, F):
        while jb.depth > 4 * F and time.monotonic() < deadline:
            os.sched_yield()  # back-pressure: let the consumer make room
        jb.push(ramp(start, F))
    jb.push(np.zeros(target_ms * 24, dtype=np.float32))
    done.set()
    consumer.join(timeout=max(0.0, deadline - time.monotonic()) + 1)
    assert not consumer.is_alive(), "the consumer never saw the end within 60 s"
    out = np.concatenate(got)
    audible = out[out != 0]
    np.testing.assert_array_equal(audible, ramp(0, total))
    stats = jb.stats()
    assert stats.dropped_samples == 0
    assert stats.played_samples == total + target_ms * 24


@settings(max_examples=150, deadline=None)
@given(
    arrivals=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=120),
    pull_block=st.sampled_from([240, 480, 512, 960, 1920, 2048]),
    target_frames=st.integers(min_value=1, max_value=4),
)
def test_bursty_arrivals_never_grow_the_delay(
    arrivals: list[int], pull_block: int, target_frames: int
) -> None:
    """Each 80 ms tick the network delivers 0..6 frames (bursts after stalls) and the card
    consumes 80 ms in its own block size. Whatever the pattern: the depth, and so the delay,
    stays within target + tolerance; every sample is played, dropped or still queued exactly
    once; and what plays comes out in order."""
    limit = (target_frames + 1) * F  # target + one frame of tolerance
    jb = JitterBuffer(target_ms=target_frames * 80, tolerance_ms=80)
    pushed = 0
    credit = 0
    played: list[np.ndarray] = []
    for count in arrivals:
        for _ in range(count):
            jb.push(ramp(pushed, F))
            pushed += F
            assert jb.depth <= limit
        credit += F
        while credit >= pull_block:
            played.append(jb.pull(pull_block))
            credit -= pull_block
    stats = jb.stats()
    out = np.concatenate(played) if played else np.zeros(0, np.float32)
    audible = out[out != 0]
    assert stats.played_samples == audible.size
    assert stats.played_samples + stats.dropped_samples + jb.depth == pushed
    assert np.all(np.diff(audible) > 0), "order is kept; drops only skip forward"
    assert stats.depth_ms <= limit / 24
    if all(count == 1 for count in arrivals) and pull_block == F:
        assert stats.dropped_samples == 0, "a perfectly steady stream never loses audio"


def run_steady(jb: JitterBuffer, frames: int, start: int, pulls: tuple[int, ...] = (4,)) -> int:
    """Push a frame, then let a 20 ms sound card pull as many times as the pattern says."""
    pushed = start
    for i in range(frames):
        jb.push(ramp(pushed, F))
        pushed += F
        for _ in range(pulls[i % len(pulls)]):
            jb.pull(F // 4)
    return pushed


def trough_ms(jb: JitterBuffer, frames: int, start: int) -> float:
    """The lowest depth just before an arrival, over ``frames`` steady frames."""
    lowest = float("inf")
    for i in range(frames):
        lowest = min(lowest, jb.stats().depth_ms)
        jb.push(ramp(start + i * F, F))
        for _ in range(4):
            jb.pull(F // 4)
    return lowest


def test_a_standing_extra_frame_is_dropped_once_after_the_settle_window() -> None:
    """Two frames at once while starting leave a surplus below the tolerance: without care it
    would add 80 ms to the whole conversation."""
    jb = JitterBuffer(target_ms=160, tolerance_ms=80)
    jb.push(ramp(0, F))
    jb.push(ramp(F, 2 * F))  # frames 2 and 3 together: 240 ms, not above target + tolerance
    for _ in range(4):
        jb.pull(F // 4)
    pushed = run_steady(jb, 10, 3 * F)
    assert trough_ms(jb, 3, pushed) == pytest.approx(160.0, abs=20), "one frame too many"
    assert jb.stats().dropped_samples == 0, "not within the first window"
    pushed = run_steady(jb, 30, pushed + 3 * F)
    stats = jb.stats()
    assert stats.trims == 1
    assert stats.dropped_samples == pytest.approx(F, abs=F // 4)
    assert trough_ms(jb, 5, pushed) == pytest.approx(80.0, abs=20), "target minus one frame"
    run_steady(jb, 100, pushed + 5 * F)
    assert jb.stats().trims == 1, "a settled buffer is left alone"
    assert jb.stats().underruns == 0


def test_a_cushion_that_is_used_is_never_trimmed() -> None:
    """Arrivals that wobble by 20 ms use the cushion down to the target; nothing stands."""
    jb = JitterBuffer(target_ms=160, tolerance_ms=80)
    run_steady(jb, 200, 0, pulls=(3, 5, 4, 4))
    stats = jb.stats()
    assert stats.trims == 0 and stats.dropped_samples == 0 and stats.underruns == 0
