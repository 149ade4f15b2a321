"""The recordings list's player on a real (virtual) speaker: what it plays is what was recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.audio.player import RecordingPlayer
from tests.audio.test_live_devices import Parec
from tests.signals import dominant_frequency, tone

pytestmark = pytest.mark.usefixtures("pulse_devices")


async def test_a_recording_plays_on_the_default_speaker(tmp_path: Path) -> None:
    """A conversation file (user 440 Hz left, model silent right) comes out of ``spk``."""
    user = tone(440, 1.0, amplitude=0.4)
    wav = tmp_path / "talk.wav"
    sf.write(str(wav), np.column_stack((user, np.zeros_like(user))), 24_000, subtype="PCM_16")
    ear = Parec("spk.monitor", tmp_path / "spk.raw")
    try:
        played = await asyncio.wait_for(RecordingPlayer().play(wav), 20)
    finally:
        heard = ear.stop()
    assert played == pytest.approx(1.0, abs=0.01)
    loud = np.flatnonzero(np.abs(heard) > 0.1)
    assert loud.size, "nothing came out of the speaker"
    assert (loud[-1] - loud[0]) / 24_000 == pytest.approx(1.0, abs=0.1), "all of it, once"
    assert dominant_frequency(heard[loud[0] : loud[-1]]) == pytest.approx(440, abs=3)
