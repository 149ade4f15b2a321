"""The Offline page's player on a real (PulseAudio null-sink) speaker: the file comes out."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.audio.file_player import FilePlayer, output_problem
from tests.audio.analysis import RATE
from tests.audio.test_live_devices import Parec
from tests.signals import dominant_frequency, tone

pytestmark = pytest.mark.usefixtures("pulse_devices")


def test_a_file_plays_on_the_default_speaker(tmp_path: Path) -> None:
    assert output_problem() is None
    path = tmp_path / "answer.wav"
    # 48 kHz stereo: the player hands the file to the device as it is, at its own rate.
    left = tone(660, 1.0, 48_000)
    sf.write(str(path), np.stack((left, left), axis=1), 48_000, subtype="PCM_16")
    recorder = Parec("spk.monitor", tmp_path / "spk.raw")
    player = FilePlayer()
    try:
        assert player.play(path) == 1.0
        assert player.playing == path
        player.wait()
    finally:
        heard = recorder.stop()
        player.stop()
    assert cast(Path | None, player.playing) is None  # changed by stop(), not by the test
    loud = np.flatnonzero(np.abs(heard) > 0.05)
    assert len(loud) > 0, "the speaker stayed silent"
    played = heard[loud[0] : loud[-1] + 1]
    assert 0.9 * RATE < len(played) < 1.1 * RATE, "the whole second came out, once"
    assert abs(dominant_frequency(played, RATE) - 660) < 5
