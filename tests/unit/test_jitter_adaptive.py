"""The adaptive jitter buffer on scripted arrival schedules and a fake clock.

A sound card pulls 10 ms every 10 ms; the model's 80 ms frames arrive when the schedule says.
Everything is deterministic: the clock only moves with the schedule, the "network" is seeded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from pplex_desktop.audio.jitter import ADAPTIVE, JitterBuffer
from pplex_desktop.audio.stretch import Stretcher
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE

F = FRAME_SAMPLES
FRAME_S = F / SAMPLE_RATE
Pcm = npt.NDArray[np.float32]
LOUD = 0.3  # every speech sample is at least this loud, and each one is unique


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def speech(frames: int) -> tuple[list[Pcm], Pcm]:
    """Frames of "speech" (loud, every sample unique) with pauses between "words"; also the
    mask of loud samples. Pattern: three loud frames, then one and a half quiet frames."""
    total = frames * F
    index = np.arange(total)
    word = (index % (int(4.5 * F))) < 3 * F
    signs = np.where(index % 2 == 0, 1.0, -1.0)
    rng = np.random.default_rng(7)
    loud = signs * (LOUD + 1e-7 * index)
    quiet = rng.uniform(-2e-4, 2e-4, total)
    pcm = np.where(word, loud, quiet).astype(np.float32)
    return [pcm[i * F : (i + 1) * F] for i in range(frames)], pcm


def schedule(
    frames: int,
    *,
    spread_s: float = 0.0,
    burst_every_s: float | None = None,
    burst_s: float = 0.0,
    seed: int = 1,
    base_s: float = 0.01,
) -> list[float]:
    """Arrival times: frame i is complete at (i+1) * 80 ms, then travels base + a random part
    of ``spread_s``; every ``burst_every_s`` the link holds frames for ``burst_s``. In order."""
    rng = np.random.default_rng(seed)
    times: list[float] = []
    held_until = -1.0
    next_burst = burst_every_s
    for i in range(frames):
        sent = (i + 1) * FRAME_S
        if next_burst is not None and burst_every_s is not None and sent >= next_burst:
            held_until = sent + burst_s
            next_burst += burst_every_s
        t = max(sent + base_s + rng.uniform(0.0, spread_s), held_until)
        times.append(max(t, times[-1]) if times else t)
    return times


@dataclass
class Run:
    out: Pcm
    underrun_times: list[float] = field(default_factory=list)
    targets: list[tuple[float, float]] = field(default_factory=list)  # (time, target ms)


def play(
    jb: JitterBuffer, clock: FakeTime, frames: list[Pcm], arrivals: list[float], block: int = 240
) -> Run:
    """Push each frame at its arrival time; pull ``block`` samples at the card's steady pace."""
    step = block / SAMPLE_RATE
    end = arrivals[-1] + 0.5
    pulls = int(end / step) + 1
    out = np.empty(pulls * block, dtype=np.float32)
    run = Run(out)
    nxt = 0
    last = arrivals[-1]
    for k in range(pulls):
        t = k * step
        while nxt < len(arrivals) and arrivals[nxt] <= t:
            clock.now = arrivals[nxt]
            jb.push(frames[nxt])
            nxt += 1
        clock.now = t
        before = jb.stats().underruns
        jb.pull_into(out[k * block : (k + 1) * block])
        if t > last + FRAME_S:
            continue  # the stream has ended: running dry now is no underrun
        if jb.stats().underruns != before:
            run.underrun_times.append(t)
        run.targets.append((t, jb.stats().target_ms))
    return run


def adaptive() -> tuple[JitterBuffer, FakeTime]:
    clock = FakeTime()
    return JitterBuffer(target_ms=ADAPTIVE, clock=clock), clock


def late_target(run: Run, after_s: float) -> float:
    return max(ms for t, ms in run.targets if t >= after_s)


def test_a_calm_link_settles_at_one_frame_plus_little() -> None:
    jb, clock = adaptive()
    frames, _ = speech(500)  # 40 s
    run = play(jb, clock, frames, schedule(500, spread_s=0.002))
    stats = jb.stats()
    assert stats.mode == "adaptive"
    assert stats.jitter_ms <= 3.0
    # One frame, the 2 ms of jitter, one 10 ms card block and a 5 ms margin; less than a
    # frame of cushion over the jitter, and well under the old fixed 160 ms.
    assert late_target(run, 20.0) <= 100.0
    assert stats.target_ms - 80.0 - stats.jitter_ms <= 80.0
    assert not [t for t in run.underrun_times if t > 2.0]
    # The depth followed the target down (pauses were trimmed), not just the number.
    assert stats.trimmed_samples > 0
    assert stats.depth_ms <= stats.target_ms + 20.0


def test_a_jittery_link_grows_the_target_and_stops_underrunning() -> None:
    jb, clock = adaptive()
    frames, _ = speech(750)  # 60 s
    run = play(jb, clock, frames, schedule(750, spread_s=0.06))
    stats = jb.stats()
    assert 50.0 <= stats.jitter_ms <= 62.0
    assert 80.0 + 50.0 <= late_target(run, 30.0) <= 80.0 + 60.0 + 40.0
    late = [t for t in run.underrun_times if t > 10.0]
    assert len(late) <= 1, f"underruns after adapting at {late}"


def test_a_fixed_target_stays_as_chosen() -> None:
    """Fixed mode behaves as it always did: no measuring, no editing."""
    clock = FakeTime()
    jb = JitterBuffer(target_ms=100, clock=clock)
    frames, _ = speech(750)
    run = play(jb, clock, frames, schedule(750, spread_s=0.06))
    stats = jb.stats()
    assert stats.mode == "fixed" and stats.target_ms == 100.0
    assert stats.stretched_samples == stats.trimmed_samples == 0
    assert {ms for _, ms in run.targets} == {100.0}
    # Each underrun delays the fixed schedule for good (nothing catches up below the
    # tolerance), which is why a fixed target needs so much headroom.
    assert run.underrun_times


def test_recurring_bursts_stop_underrunning_once_learned() -> None:
    jb, clock = adaptive()
    frames, _ = speech(1000)  # 80 s, a 300 ms hold every 10 s
    arrivals = schedule(1000, spread_s=0.01, burst_every_s=10.0, burst_s=0.3)
    run = play(jb, clock, frames, arrivals)
    assert run.underrun_times, "the first burst cannot be foreseen"
    assert not [t for t in run.underrun_times if t > 25.0], run.underrun_times
    assert late_target(run, 30.0) >= 80.0 + 300.0
    assert jb.stats().dropped_samples == 0, "bursts are absorbed, not dropped"


def test_an_underrun_raises_the_target_at_once() -> None:
    jb, clock = adaptive()
    frames, _ = speech(200)
    arrivals = schedule(200, spread_s=0.002)
    # A single 250 ms stall after 10 s: it cannot be foreseen; the target must jump.
    arrivals = [t + (0.25 if 125 <= i < 128 else 0.0) for i, t in enumerate(arrivals)]
    arrivals = [max(arrivals[: i + 1]) for i in range(len(arrivals))]
    run = play(jb, clock, frames, arrivals)
    assert len(run.underrun_times) == 1
    t_under = run.underrun_times[0]
    before = [ms for t, ms in run.targets if t < t_under][-1]
    right_after = next(ms for t, ms in run.targets if t >= t_under)
    assert right_after >= before + 20.0, "raised by the callback itself, before any arrival"
    assert late_target(run, t_under + 0.3) >= 80.0 + 200.0


def test_catching_up_never_cuts_loud_samples() -> None:
    """Jittery for 20 s (a deep target), then calm for 40 s: the target falls, the surplus is
    cut out of pauses; every loud sample that was pushed is played."""
    jb, clock = adaptive()
    frames, pcm = speech(750)
    jittery = schedule(250, spread_s=0.08, seed=3)
    calm = [jittery[-1] + (i + 1) * FRAME_S for i in range(500)]
    run = play(jb, clock, frames, jittery + calm)
    stats = jb.stats()
    assert stats.trimmed_samples > round(0.04 * SAMPLE_RATE), "the surplus was cut"
    assert late_target(run, 55.0) <= 110.0
    played = run.out
    loud_pushed = pcm[np.abs(pcm) >= LOUD]
    loud_played = played[np.abs(played) >= LOUD]
    missing = np.setdiff1d(loud_pushed, loud_played)
    assert missing.size == 0, f"{missing.size} loud samples were cut"
    assert stats.dropped_samples == 0
    # What is gone is the quiet part: the energy played is the energy pushed, within the
    # pitch periods repeated while the target grew.
    assert np.abs(played).max() < 0.5


@pytest.mark.parametrize("rate", [SAMPLE_RATE, 48_000])
def test_shortening_takes_only_quiet_samples(rate: int) -> None:
    stretcher = Stretcher(rate)
    n = round(0.08 * rate)
    x = np.full(n, 0.5, dtype=np.float32)
    x[::2] = -0.5
    x[n // 4 : n // 2] = 1e-4  # a 20 ms pause
    edit = stretcher.shorten(x, round(0.03 * rate))
    assert 0 < -edit.change <= round(0.02 * rate)
    assert edit.pcm.shape[0] == n + edit.change
    assert edit.removed_peak < 0.01
    assert np.count_nonzero(np.abs(edit.pcm) >= 0.5) == np.count_nonzero(np.abs(x) >= 0.5)
    assert stretcher.shorten(np.full(n, 0.5, dtype=np.float32), 100).change == 0, "no pause"


def test_lengthening_a_voice_repeats_whole_pitch_periods() -> None:
    rate = SAMPLE_RATE
    t = np.arange(F) / rate
    voice = (0.5 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)  # a 5 ms period
    edit = Stretcher(rate).lengthen(voice, round(0.02 * rate))
    assert edit.change > 0 and edit.change % 120 == 0, "multiples of the 120-sample period"
    # Seamless: no sample-to-sample jump larger than the sine's own steepest step.
    steepest = float(np.abs(np.diff(voice)).max())
    assert float(np.abs(np.diff(edit.pcm)).max()) <= steepest * 1.05


def test_positions_still_name_the_pushed_samples_after_edits() -> None:
    """The conversation measures the delay from which pushed sample a pull played."""
    jb, clock = adaptive()
    frames, _ = speech(400)
    arrivals = schedule(400, spread_s=0.05, seed=5)
    positions: list[tuple[int, int]] = []
    nxt = 0
    out = np.empty(240, dtype=np.float32)
    for k in range(int((arrivals[-1] + 0.5) / 0.01)):
        while nxt < len(arrivals) and arrivals[nxt] <= k * 0.01:
            clock.now = arrivals[nxt]
            jb.push(frames[nxt])
            nxt += 1
        clock.now = k * 0.01
        positions.append(jb.pull_into(out))
    stats = jb.stats()
    assert stats.stretched_samples + stats.trimmed_samples > 0
    starts = [p for p, _ in positions]
    assert starts == sorted(starts), "positions never go back"
    for (p, taken), (nxt_p, _) in itertools.pairwise(positions):
        assert nxt_p - (p + taken) in (0, 1) or taken == 0
    assert starts[-1] <= 400 * F


def test_switching_between_fixed_and_adaptive() -> None:
    clock = FakeTime()
    jb = JitterBuffer(target_ms=240, clock=clock)
    assert jb.stats().mode == "fixed"
    jb.set_target_ms(ADAPTIVE)
    assert jb.stats().mode == "adaptive" and jb.stats().target_ms == 240.0, "from where it was"
    jb.target_ms = 160
    assert jb.stats().mode == "fixed" and jb.stats().target_ms == 160.0
    with pytest.raises(ValueError, match="between"):
        jb.set_target_ms(5)


def test_a_silent_stream_is_trimmed_too() -> None:
    """The model says nothing for a minute: its silence is the easiest thing to cut."""
    jb, clock = adaptive()
    frames = [np.zeros(F, dtype=np.float32) for _ in range(300)]
    early = [0.5 + 0.001 * i for i in range(5)]  # five frames at once: 400 ms of surplus
    calm = [early[-1] + (i + 1) * FRAME_S for i in range(295)]
    run = play(jb, clock, frames, early + calm)
    assert jb.stats().trimmed_samples > round(0.2 * SAMPLE_RATE)
    assert late_target(run, 20.0) <= 100.0
    assert not run.underrun_times
