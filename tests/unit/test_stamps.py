"""Stamping sound blocks by their sample count, anchored to late, wobbly callbacks."""

from __future__ import annotations

import numpy as np

from pplex_desktop.audio.stamps import CONFIRM, WINDOW_S, SampleClock

RATE = 24_000
BLOCK = 240  # 10 ms, as an output callback runs
DT = BLOCK / RATE


def stamp_all(
    clock: SampleClock, arrivals: np.ndarray, *, completed: bool, skipped: int | None = None
) -> np.ndarray:
    return np.array(
        [
            clock.stamp(float(a), BLOCK, completed=completed, skipped=i == skipped)
            for i, a in enumerate(arrivals)
        ]
    )


def test_late_callbacks_do_not_move_the_stamps() -> None:
    rng = np.random.default_rng(7)
    truth = 100.0 + np.arange(500) * DT  # when each block is asked for
    lateness = rng.uniform(0.0, 0.04, 500)  # a busy app: up to 40 ms waiting for the GIL
    lateness[::50] = 0.0  # now and then one runs on time
    clock = SampleClock(RATE)
    stamps = stamp_all(clock, truth + lateness, completed=False)
    assert np.max(np.abs(stamps[50:] - truth[50:])) < 1e-6
    assert clock.skips == 0


def test_a_microphone_a_block_late_for_seconds_is_not_a_skip() -> None:
    truth = 5.0 + np.arange(400) * DT
    lateness = np.zeros(400)
    lateness[100:300] = 0.08  # the PulseAudio plugin's habit: one 80 ms block behind for 2 s
    clock = SampleClock(RATE)
    stamps = stamp_all(clock, truth + DT + lateness, completed=True)
    np.testing.assert_allclose(stamps, truth, atol=1e-6)
    assert clock.skips == 0


def test_a_stall_that_loses_time_moves_the_stamps_by_as_much() -> None:
    due = np.arange(300) * DT
    due[100:] += 1.9  # an ALSA underrun and restart: the rest plays 1.9 s later
    clock = SampleClock(RATE)
    stamps = stamp_all(clock, due, completed=False)
    # Confirmed after a few callbacks; from then on every stamp is right again.
    np.testing.assert_allclose(stamps[100 + CONFIRM :], due[100 + CONFIRM :], atol=1e-6)
    np.testing.assert_allclose(stamps[:100], due[:100], atol=1e-6)
    assert clock.skips == 1


def test_a_reported_underrun_moves_the_stamps_at_once() -> None:
    due = np.arange(200) * DT
    due[100:] += 0.1  # too short to look like a skip by itself
    clock = SampleClock(RATE)
    stamps = stamp_all(clock, due, completed=False, skipped=100)
    np.testing.assert_allclose(stamps, due, atol=1e-6)


def test_a_card_slightly_slower_than_the_system_clock_is_followed() -> None:
    n = round(3 * WINDOW_S / DT)
    due = np.arange(n) * DT * (1 + 500e-6)  # 500 ppm slow: 15 ms over 30 s
    clock = SampleClock(RATE)
    stamps = stamp_all(clock, due, completed=False)
    # Behind by at most the drift over one window, never by the 15 ms the drift adds up to.
    assert np.max(np.abs(stamps - due)) < WINDOW_S * 500e-6 + 0.003
