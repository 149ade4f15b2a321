"""The recording player without a sound card: the stand-in PortAudio module of test_devices,
its callback driven from the test, as the speaker's clock would."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.audio import portaudio as devices
from pplex_desktop.audio.duplex import AudioUnavailableError
from pplex_desktop.audio.player import RecordingPlayer
from tests.signals import rms, tone
from tests.unit.test_devices import FakeSd, FakeStream, device

BLOCK = 960  # 20 ms at 48 kHz


class OpeningSd(FakeSd):
    """Also tells the test when a stream has been opened (on the player's worker thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = threading.Event()

    def OutputStream(self, **kwargs: Any) -> FakeStream:
        stream = super().OutputStream(**kwargs)
        self.opened.set()
        return stream


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> OpeningSd:
    sd = OpeningSd(
        [device(0, "USB headset", 2, 2, 48_000.0)],
        default=(0, 0),
        rates={0: {48_000}},
        mono=False,  # a headset that only opens in stereo, at 48 kHz
    )
    monkeypatch.setattr(devices, "_sounddevice", lambda: sd)
    return sd


def conversation_wav(path: Path, seconds: float) -> Path:
    """Left: the user (440 Hz); right: the model (1 kHz); as the recorder writes them."""
    left, right = tone(440, seconds, amplitude=0.3), tone(1_000, seconds, amplitude=0.3)
    sf.write(str(path), np.column_stack((left, right)), 24_000, subtype="PCM_16")
    return path


async def speaker(sd: OpeningSd, task: asyncio.Task[float], limit: int = 2_000) -> np.ndarray:
    """Be the speaker: ask for 20 ms blocks until the player is done; return what it played."""
    assert await asyncio.to_thread(sd.opened.wait, 10), "the player opened no stream"
    outs = []
    for _ in range(limit):
        if task.done():
            break
        stream: FakeStream = sd.streams[0]
        out = np.full((BLOCK, 2), 9.0, dtype=np.float32)
        stream.kwargs["callback"](out, BLOCK, None, None)
        outs.append(out)
        await asyncio.sleep(0)  # the loop refills the buffer, as it does between callbacks
    return np.concatenate(outs) if outs else np.zeros((0, 2), np.float32)


async def test_a_conversation_plays_mixed_to_mono_at_the_device_rate(
    fake_sd: OpeningSd, tmp_path: Path
) -> None:
    wav = conversation_wav(tmp_path / "talk.wav", 0.5)
    player = RecordingPlayer()
    task = asyncio.create_task(player.play(wav))
    out = await speaker(fake_sd, task)
    assert await task == pytest.approx(0.5, abs=0.01)
    assert fake_sd.streams[0].kwargs["samplerate"] == 48_000
    assert fake_sd.streams[0].closed and not player.playing
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    loud = np.flatnonzero(np.abs(out[:, 0]) > 0.05)
    assert loud[-1] - loud[0] == pytest.approx(0.5 * 48_000, rel=0.02), "all of it, once"
    audible = out[loud[0] : loud[-1], 0]
    spectrum = np.abs(np.fft.rfft(audible * np.hanning(len(audible))))
    freqs = np.fft.rfftfreq(len(audible), 1 / 48_000)
    strongest = sorted(freqs[np.argsort(spectrum)[-40:]])
    assert any(abs(f - 440) < 10 for f in strongest), "the user's side is heard"
    assert any(abs(f - 1_000) < 10 for f in strongest), "the model's side is heard"


async def test_stop_ends_playback_at_once(fake_sd: OpeningSd, tmp_path: Path) -> None:
    wav = conversation_wav(tmp_path / "long.wav", 30.0)
    player = RecordingPlayer()
    task = asyncio.create_task(player.play(wav))
    await speaker(fake_sd, task, limit=25)  # half a second
    player.stop()
    played = await asyncio.wait_for(task, 5)
    assert played < 2.0, "only what was queued ahead, not the whole file"
    assert fake_sd.streams[0].closed


async def test_a_short_file_still_plays(fake_sd: OpeningSd, tmp_path: Path) -> None:
    wav = tmp_path / "blip.wav"
    sf.write(str(wav), tone(700, 0.03, amplitude=0.5), 24_000)
    player = RecordingPlayer()
    task = asyncio.create_task(player.play(wav))
    out = await speaker(fake_sd, task)
    assert await task == pytest.approx(0.03, abs=0.005)
    loud = np.flatnonzero(np.abs(out[:, 0]) > 0.05)
    assert loud[-1] - loud[0] == pytest.approx(0.03 * 48_000, rel=0.1)
    assert rms(out[loud[0] : loud[-1], 0]) > 0.2


async def test_an_unreadable_file_is_a_sentence(fake_sd: OpeningSd, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(AudioUnavailableError, match=r"bad\.wav cannot be read"):
        await RecordingPlayer().play(bad)
