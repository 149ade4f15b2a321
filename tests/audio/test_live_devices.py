"""Real sounddevice streams on PulseAudio null sinks, a real Conversation, pplex-sim echoing.

A spoken sentence is played into the virtual microphone; what the app plays is recorded from
the virtual speaker's monitor. With the microphone open the sentence must come back; with
push-to-talk held up it must not, although frames keep flowing to the model.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pplex_desktop.audio.conversation import Conversation, ConversationConfig, ConversationState
from pplex_desktop.audio.portaudio import SoundDeviceDuplex
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.moshi.audiofile import read_mono, write_wav
from tests.audio import pulse
from tests.audio.analysis import RATE, Match, Pieces, from_s16le, locate, locate_pieces
from tests.conversation_helpers import EventLog
from tests.sim.conftest import SimFactory

S = ConversationState
SENTENCE = "The quick brown fox jumps over the lazy dog."
pytestmark = pytest.mark.usefixtures("pulse_devices")


def speak(folder: Path) -> tuple[Path, np.ndarray]:
    """The sentence as 24 kHz audio, from espeak-ng, with a little silence around it."""
    raw = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), SENTENCE], check=True, timeout=30)
    pcm = read_mono(raw)  # espeak-ng writes 22050 Hz
    pcm = 0.7 * pcm / np.max(np.abs(pcm))
    pad = np.zeros(RATE // 4, dtype=np.float32)
    pcm = np.concatenate((pad, pcm, pad)).astype(np.float32)
    path = folder / "sentence.wav"
    write_wav(path, pcm)
    return path, pcm


class Parec:
    """Record a PulseAudio source to a file (when it really starts recording is not known)."""

    def __init__(self, source: str, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={source}",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=10",
            ],
            stdout=self._file,
        )

    def stop(self) -> np.ndarray:
        self._proc.terminate()
        self._proc.wait(10)
        self._file.close()
        return from_s16le(self.path.read_bytes())


async def converse(
    make_sim: SimFactory, tmp_path: Path, ptt: PushToTalk
) -> tuple[Match, Pieces, np.ndarray, np.ndarray, int]:
    """Play the sentence into the microphone during a live conversation; return where it was
    found in the microphone and speaker recordings, both recordings and the frames sent."""
    wav, sentence = speak(tmp_path)
    sim = await make_sim(echo_delay_frames=0)
    mouth = Parec("mic.monitor", tmp_path / "mic.raw")
    ear = Parec("spk.monitor", tmp_path / "spk.raw")
    log = EventLog()
    cfg = ConversationConfig(url=sim.url or "", text_prompt="Echo me.", voice_prompt="NATF1.pt")
    conv = Conversation(cfg, SoundDeviceDuplex(), log, ptt=ptt)
    task = asyncio.create_task(conv.run())
    try:
        await log.wait_state(S.LIVE)
        await log.wait_levels(3)  # frames flow: both streams run
        player = await asyncio.create_subprocess_exec("paplay", "--device=mic", str(wav))
        assert await player.wait() == 0
        await log.wait_levels(8)  # 640 ms for the tail to come back through the buffers
    finally:
        await conv.hang_up()
    assert await task is S.ENDED, log.final.detail
    mic, spk = mouth.stop(), ear.stop()
    # Piece by piece at the ear: the adaptive buffer edits pauses, an underrun inserts a gap.
    at_mouth, at_ear = locate(mic, sentence), locate_pieces(spk, sentence)
    # No mouth-to-ear figure from two parec processes: their start times differ by an unknown
    # amount (the session's stats carry the delay it measured on one clock).
    print(f"\nmicrophone: {at_mouth}\nspeaker: {at_ear}\n{conv.stats()}")
    return at_mouth, at_ear, mic, spk, conv.stats().frames_sent


async def test_the_sentence_comes_back_out_of_the_speaker(
    make_sim: SimFactory, tmp_path: Path
) -> None:
    at_mouth, at_ear, _, _, _ = await converse(make_sim, tmp_path, PushToTalk(PttMode.OPEN))
    assert at_mouth.envelope_corr > 0.9, "the sentence reached the virtual microphone"
    assert at_ear.envelope_corr > 0.8, f"the sentence did not come back: {at_ear}"
    assert at_ear.spectral_corr > 0.6, f"what came back does not sound like it: {at_ear}"
    assert at_ear.in_order and not at_ear.missing, f"words came back out of order: {at_ear}"
    assert at_ear.lag > at_mouth.lag - RATE // 100, "the echo cannot come before the voice"


async def test_push_to_talk_released_keeps_the_sentence_from_the_model(
    make_sim: SimFactory, tmp_path: Path
) -> None:
    at_mouth, _, mic, spk, frames_sent = await converse(
        make_sim, tmp_path, PushToTalk(PttMode.HOLD)
    )
    assert at_mouth.envelope_corr > 0.9, "the sentence reached the virtual microphone"
    spoken_s = len(mic) / RATE
    assert frames_sent >= 0.5 * spoken_s / 0.08, "silent frames kept the model's clock going"
    assert np.max(np.abs(spk)) < 0.01, "nothing of the sentence came out of the speaker"


def test_pulse_sinks_are_the_defaults() -> None:
    info = pulse.pactl("info").stdout
    assert "Default Sink: spk" in info
    assert "Default Source: mic.monitor" in info
