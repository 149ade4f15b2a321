"""Push-to-talk: every frame in gives a frame out; only its content depends on the key."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest

from pplex_desktop.audio.ptt import VOICE_HANGOVER_FRAMES, PttMode, PushToTalk
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from tests.signals import tone

VOICE = tone(300, FRAME_SAMPLES / 24_000, amplitude=0.3)
QUIET = np.full(FRAME_SAMPLES, 1e-4, dtype=np.float32)


def passes(ptt: PushToTalk) -> bool:
    out = ptt.gate(VOICE)
    assert out.shape == VOICE.shape and out.dtype == np.float32
    return bool(np.array_equal(out, VOICE))


def test_open_mode_always_passes() -> None:
    ptt = PushToTalk(PttMode.OPEN)
    ptt.release()
    ptt.press()
    assert ptt.talking
    assert all(passes(ptt) for _ in range(3))


def test_hold_mode_passes_only_while_held() -> None:
    ptt = PushToTalk("hold")
    assert not passes(ptt)
    ptt.press()
    assert passes(ptt)
    ptt.press()  # key repeat must not toggle anything
    assert passes(ptt)
    ptt.release()
    out = ptt.gate(VOICE)
    assert not out.any(), "released: a silent frame, not no frame"


def test_toggle_mode_flips_on_each_press_and_ignores_release() -> None:
    ptt = PushToTalk(PttMode.TOGGLE)
    assert not passes(ptt)
    ptt.press()
    ptt.release()
    assert passes(ptt)
    ptt.press()
    assert not passes(ptt)


def test_changing_mode_closes_the_gate() -> None:
    ptt = PushToTalk(PttMode.HOLD)
    ptt.press()
    ptt.mode = PttMode.TOGGLE
    assert not ptt.talking, "a key held in the old mode must not leave the microphone open"
    ptt.mode = "open"
    assert cast(bool, ptt.talking)  # changed by the mode, not by the test
    with pytest.raises(ValueError):
        ptt.mode = "shout"


def test_silent_frames_are_shared_and_read_only() -> None:
    ptt = PushToTalk(PttMode.HOLD)
    out = ptt.gate(VOICE)
    with pytest.raises(ValueError):
        out[0] = 1.0
    odd = ptt.gate(np.ones(100, dtype=np.float32))
    assert odd.shape == (100,) and not odd.any()


def test_ducking_follows_the_voice_with_a_hangover() -> None:
    ptt = PushToTalk(PttMode.OPEN, duck_gain=0.3)
    ptt.gate(QUIET)
    assert ptt.output_gain == 1.0, "room noise does not duck the model"
    ptt.gate(VOICE)
    assert ptt.output_gain == pytest.approx(0.3)
    for _ in range(VOICE_HANGOVER_FRAMES - 1):
        ptt.gate(QUIET)
        assert ptt.output_gain == pytest.approx(0.3), "no pumping between words"
    ptt.gate(QUIET)
    assert ptt.output_gain == 1.0


def test_a_closed_gate_never_ducks() -> None:
    ptt = PushToTalk(PttMode.HOLD, duck_gain=0.3)
    ptt.gate(VOICE)
    assert ptt.output_gain == 1.0
    ptt.press()
    ptt.gate(VOICE)
    assert ptt.output_gain == pytest.approx(0.3)
    ptt.release()
    ptt.gate(VOICE)
    assert ptt.output_gain == 1.0, "letting go stops the ducking at once"


def test_without_duck_gain_the_model_stays_loud() -> None:
    ptt = PushToTalk(PttMode.OPEN)
    ptt.gate(VOICE)
    assert ptt.output_gain == 1.0


def test_speaker_mute_wins() -> None:
    ptt = PushToTalk(PttMode.OPEN, duck_gain=0.3, speaker_muted=True)
    ptt.gate(VOICE)
    assert ptt.output_gain == 0.0
    ptt.speaker_muted = False
    assert ptt.output_gain == pytest.approx(0.3)


def test_duck_gain_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        PushToTalk(duck_gain=1.5)
