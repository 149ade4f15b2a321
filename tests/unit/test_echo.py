"""Echo cancellation on the microphone: the far end on the capture clock, AEC3 removing the
speaker's sound, near-end speech kept, and a detector that says when the model hears itself."""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt
import pytest

from pplex_desktop.audio.echo import (
    CHUNK,
    EchoCanceller,
    EchoSettings,
    EchoUnavailableError,
    FarEnd,
)

RATE = 24_000
Pcm = npt.NDArray[np.float32]


def babble(seconds: float, seed: int, level: float = 0.1) -> Pcm:
    """Noise with a syllable-like envelope: wideband, like speech, never periodic."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    env = (0.5 + 0.5 * np.sin(2 * np.pi * 3.3 * np.arange(n) / RATE + seed)) ** 2
    return (level * env * rng.standard_normal(n)).astype(np.float32)


def db(a: Pcm, b: Pcm) -> float:
    return float(
        10 * np.log10(np.mean(a.astype(np.float64) ** 2) / np.mean(b.astype(np.float64) ** 2))
    )


def run_room(
    settings: EchoSettings,
    far: Pcm,
    near_voice: Pcm,
    delay_s: float,
    gain: float = 0.5,
    *,
    mic_late_s: float = 0.0,
    late_until_s: float = 0.0,
) -> tuple[Pcm, Pcm, EchoCanceller]:
    """Play ``far`` on a speaker whose sound reaches the microphone ``delay_s`` later, with
    ``near_voice`` said into it; blocks of unrelated sizes on both sides, stamped on one clock
    (the microphone's ``mic_late_s`` late until ``late_until_s``: a clock finding its pace)."""
    canceller = EchoCanceller(settings)
    d = round(delay_s * RATE)
    mic = near_voice.copy()
    mic[d:] += gain * far[: len(far) - d]
    out: list[Pcm] = []
    t0 = 100.0
    played = 0
    captured = 0
    while captured + 480 <= len(mic):
        # The speaker takes its blocks ahead of the microphone, as the output latency says.
        while played < min(len(far), captured + 2400):
            canceller.play(far[played : played + 441], t0 + played / RATE)
            played += 441
        late = mic_late_s if captured < late_until_s * RATE else 0.0
        block, _t = canceller.process(mic[captured : captured + 480], t0 + captured / RATE + late)
        out.append(block)
        captured += 480
    return np.concatenate(out), mic[:captured], canceller


def test_the_far_end_is_read_back_by_the_time_it_was_heard() -> None:
    far = FarEnd(history_s=1.0)
    x = np.arange(1, 2401, dtype=np.float32)
    far.write(x[:1000], 10.0)
    far.write(x[1000:], 10.0 + 1000 / RATE + 0.01)  # 10 ms of nothing played in between
    got = far.read(10.0 + 990 / RATE, 500)
    np.testing.assert_array_equal(got[:10], x[990:1000])
    assert not got[10:250].any(), "the gap is silence"
    np.testing.assert_array_equal(got[250:], x[1000:1250])
    assert not far.read(9.0, 100).any() and not far.read(20.0, 100).any()


@pytest.mark.parametrize("delay_s", [0.04, 0.12])
def test_the_speaker_is_cancelled_within_two_seconds(delay_s: float) -> None:
    far = babble(6.0, seed=1)
    out, mic, _ = run_room(EchoSettings(), far, np.zeros_like(far), delay_s)
    after = slice(2 * RATE, len(out))
    erle = db(mic[after], out[after])
    assert erle >= 30, f"only {erle:.1f} dB of echo removed after 2 s"


@pytest.mark.parametrize("late_s", [0.0075, 0.085])
def test_a_microphone_clock_correcting_itself_mid_call_lets_no_echo_through(
    late_s: float,
) -> None:
    """Its stamps turn out ``late_s`` late at 3 s, while the model speaks: following them would
    shift the far end against what AEC3 learned (13 dB for 1.5 s after 7.5 ms, measured)."""
    far = babble(6.0, seed=1)
    out, mic, _ = run_room(
        EchoSettings(), far, np.zeros_like(far), 0.04, mic_late_s=late_s, late_until_s=3.0
    )
    for start in np.arange(2.0, 5.5, 0.5):
        part = slice(round(start * RATE), round((start + 0.5) * RATE))
        erle = db(mic[part], out[part])
        assert erle >= 30, f"{erle:.1f} dB removed from {start:.1f} s"


def test_the_voice_is_kept_while_the_model_is_silent() -> None:
    voice = babble(4.0, seed=2, level=0.05)
    out, mic, _ = run_room(EchoSettings(), np.zeros_like(voice), voice, 0.04)
    # Output lags input by the 10 ms frame the canceller waits to fill.
    loss = db(mic[RATE : 3 * RATE], out[RATE : 3 * RATE])
    assert abs(loss) <= 3, f"the voice changed by {loss:.1f} dB"


def test_headphones_pass_the_microphone_untouched() -> None:
    canceller = EchoCanceller(EchoSettings(cancel=False))
    x = babble(0.1, seed=3)
    canceller.play(x, 5.0)
    out, t = canceller.process(x[:333], 5.0)
    assert t == 5.0 and out is not None
    np.testing.assert_array_equal(out, x[:333])


def test_the_model_hearing_itself_is_noticed_and_cancellation_silences_it() -> None:
    far = babble(8.0, seed=4)
    _, _, raw = run_room(EchoSettings(cancel=False), far, np.zeros_like(far), 0.04)
    assert raw.detector.heard, (raw.detector.correlation, raw.detector.level_db)
    _, _, cancelled = run_room(EchoSettings(), far, np.zeros_like(far), 0.04)
    assert not cancelled.detector.heard, (
        cancelled.detector.correlation,
        cancelled.detector.level_db,
    )


def test_blocks_come_out_in_whole_frames_with_the_time_of_their_first_sample() -> None:
    canceller = EchoCanceller(EchoSettings())
    out, t = canceller.process(np.zeros(300, dtype=np.float32), 1.0)
    assert out.shape[0] == CHUNK and t == 1.0
    out, t = canceller.process(np.zeros(300, dtype=np.float32), 1.0 + 300 / RATE)
    assert out.shape[0] == CHUNK and t == pytest.approx(1.0 + CHUNK / RATE)


def test_without_the_processing_library_the_call_fails_with_a_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)  # as if it were not installed
    with pytest.raises(EchoUnavailableError, match="tick Headphones"):
        EchoCanceller(EchoSettings())
    EchoCanceller(EchoSettings(cancel=False))  # headphones need nothing from it
