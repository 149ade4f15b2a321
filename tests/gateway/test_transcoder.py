"""The decoding workers: a file that hangs or kills a worker costs that worker, nothing more."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pplex_desktop.gateway.offline.transcoder import Transcoder
from pplex_desktop.moshi.audiofile import InvalidAudioError
from tests.signals import dominant_frequency, tone


@pytest.fixture
async def transcoder() -> AsyncIterator[Transcoder]:
    made = Transcoder(size=1, timeout_s=1.0)
    yield made
    await made.close()


def _wav(path: Path, seconds: float = 1.0, rate: int = 44_100) -> Path:
    sf.write(path, np.stack([tone(500, seconds, rate)] * 2, axis=1), rate)
    return path


async def test_files_become_24k_mono_float32(transcoder: Transcoder, tmp_path: Path) -> None:
    out = tmp_path / "out.f32"
    decoded = await transcoder.decode(_wav(tmp_path / "in.wav"), out, max_seconds=10)
    assert (decoded.sample_rate, decoded.channels, decoded.format) == (44_100, 2, "WAV")
    pcm = np.fromfile(out, dtype="<f4")
    assert len(pcm) == decoded.samples == 24_000
    assert dominant_frequency(pcm) == pytest.approx(500, abs=3)


async def test_a_hanging_decode_is_stopped_and_the_pool_recovers(
    transcoder: Transcoder, tmp_path: Path
) -> None:
    fifo = tmp_path / "never-written.wav"
    os.mkfifo(fifo)  # opening it blocks the worker forever: a stand-in for a decoder hang
    with pytest.raises(InvalidAudioError, match=r"took longer than 1 s to decode") as info:
        await transcoder.decode(fifo, tmp_path / "x.f32", max_seconds=10)
    assert info.value.status == 422
    decoded = await transcoder.decode(
        _wav(tmp_path / "ok.wav"), tmp_path / "ok.f32", max_seconds=10
    )
    assert decoded.samples == 24_000


async def test_a_worker_that_dies_mid_file_is_a_422(tmp_path: Path) -> None:
    transcoder = Transcoder(size=1, timeout_s=30.0)
    fifo = tmp_path / "stuck.wav"
    os.mkfifo(fifo)
    task = asyncio.create_task(transcoder.decode(fifo, tmp_path / "x.f32", max_seconds=10))
    # Opening the write end returns once the worker has opened the file: it is mid-decode.
    writer = await asyncio.to_thread(fifo.open, "wb")
    (pid,) = transcoder.busy_pids
    os.kill(pid, signal.SIGKILL)  # what a segfault in libsndfile looks like from here
    with pytest.raises(InvalidAudioError, match="made the audio decoder stop unexpectedly"):
        await task
    writer.close()
    decoded = await transcoder.decode(
        _wav(tmp_path / "ok.wav"), tmp_path / "ok.f32", max_seconds=10
    )
    assert decoded.samples == 24_000
    await transcoder.close()
