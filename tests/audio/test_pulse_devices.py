"""PulseAudio's sources and sinks by name, on the null sinks: listed by their descriptions, and
a chosen one is really the one that plays or records (not the default)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.audio.player import RecordingPlayer
from pplex_desktop.audio.portaudio import SoundDeviceDuplex, list_devices
from tests.audio.test_live_devices import Parec
from tests.signals import dominant_frequency, rms, tone

pytestmark = pytest.mark.usefixtures("pulse_devices")


def test_sources_and_sinks_are_listed_by_description() -> None:
    inputs = {d.name: d for d in list_devices("input", pulse=True) if d.pulse_name}
    outputs = {d.name: d for d in list_devices("output", pulse=True) if d.pulse_name}
    # Both null sinks describe themselves alike, so their names tell them apart.
    assert set(outputs) == {"Null Output (spk)", "Null Output (mic)"}
    assert set(inputs) == {
        "Monitor of Null Output (spk.monitor)",
        "Monitor of Null Output (mic.monitor)",
    }
    mic = inputs["Monitor of Null Output (mic.monitor)"]
    assert mic.spec == "pulse:mic.monitor" and mic.hostapi == "PulseAudio"
    assert list_devices(pulse=False) == [d for d in list_devices(pulse=True) if not d.pulse_name]


async def test_a_chosen_sink_plays_and_the_default_stays_silent(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    sf.write(str(wav), tone(660, 0.6, amplitude=0.4), 24_000, subtype="PCM_16")
    chosen, default = (
        Parec("mic.monitor", tmp_path / "mic.raw"),
        Parec("spk.monitor", tmp_path / "spk.raw"),
    )
    try:
        await asyncio.wait_for(RecordingPlayer("pulse:mic").play(wav), 20)
    finally:
        heard, elsewhere = chosen.stop(), default.stop()
    loud = np.flatnonzero(np.abs(heard) > 0.1)
    assert loud.size > 1_000, "the tone came out of the chosen sink"
    assert dominant_frequency(heard[loud[0] : loud[-1]]) == pytest.approx(660, abs=5)
    assert np.max(np.abs(elsewhere)) < 0.01, "and not out of the default one"


async def test_a_chosen_source_is_the_microphone(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    sf.write(str(wav), tone(440, 1.5, amplitude=0.4), 24_000, subtype="PCM_16")
    # The default source is mic.monitor; choose spk.monitor and play into spk only.
    device = SoundDeviceDuplex("pulse:spk.monitor", "pulse:mic")
    await device.start()
    try:
        assert "'spk.monitor'" in device.description
        player = await asyncio.create_subprocess_exec("paplay", "--device=spk", str(wav))
        blocks: list[np.ndarray] = []
        async with asyncio.timeout(20):
            while len(blocks) < 40 and not (blocks and rms(blocks[-1]) > 0.1):
                blocks.append((await device.read()).pcm)
        assert await player.wait() == 0
    finally:
        await device.stop()
    assert rms(blocks[-1]) > 0.1 and dominant_frequency(blocks[-1]) == pytest.approx(440, abs=15)
