"""Play a recorded conversation (a WAV file) on a speaker, for the recordings list.

The file is read on the asyncio loop in small blocks and queued ahead of the speaker in a
JitterBuffer, so the PortAudio callback only copies samples, exactly as during a conversation.
A conversation recording is stereo (left the user, right the model); it is mixed to mono so
both voices come out of every speaker, laptop or headset alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from pplex_desktop.audio import portaudio as devices
from pplex_desktop.audio.duplex import AudioUnavailableError, Pcm
from pplex_desktop.audio.jitter import JitterBuffer
from pplex_desktop.audio.portaudio import DeviceSpec

_log = logging.getLogger(__name__)
BLOCK_S = 0.1
# Keep this much queued ahead of the speaker: enough to ride over a busy loop, small enough
# that Stop is heard at once.
AHEAD_S = 0.4
START_MS = 100.0
# The speaker asks every few tens of milliseconds; this long a silence means it is gone.
SPEAKER_SILENT_LIMIT_S = 3.0


class RecordingPlayer:
    """Plays one file at a time; ``await play(path)`` returns when it has played or stopped."""

    def __init__(self, output_device: DeviceSpec = None) -> None:
        self._output_device = output_device
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._buffer: JitterBuffer | None = None
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.playing = False

    def stop(self) -> None:
        """Stop playing (on the player's loop); ``play`` then returns promptly."""
        self._stop.set()
        self._wake.set()

    async def play(self, path: Path) -> float:
        """Play ``path`` to the end; return the seconds of the file that were queued to play."""
        if self.playing:
            raise RuntimeError("The player is already playing; stop it first.")
        self.playing = True
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        finished = False
        try:
            seconds = await self._play(path)
            finished = not self._stop.is_set()
            return seconds
        finally:
            # At the natural end the sound card still holds its own buffer: let it play out.
            await self._close(drain=finished)
            self.playing = False

    async def _play(self, path: Path) -> float:
        try:
            source = sf.SoundFile(str(path))
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioUnavailableError(
                f"The recording {path.name} cannot be read: {exc}."
            ) from None
        with source:
            # Through the module, so tests can stand in for PortAudio as they do for devices.
            sd = devices._sounddevice()
            plan = devices._plan(sd, self._output_device, "output")
            # A tolerance far above what is ever queued: the player must never drop audio.
            buffer = JitterBuffer(
                sample_rate=plan.rate,
                target_ms=START_MS,
                tolerance_ms=4_000 * AHEAD_S,
                settle=False,  # it queues ahead on purpose
            )
            self._buffer = buffer
            resampler = (
                soxr.ResampleStream(source.samplerate, plan.rate, 1, "float32")
                if source.samplerate != plan.rate
                else None
            )
            try:
                with plan.opening("output"):
                    await asyncio.to_thread(self._open, sd, plan.index, plan.rate, plan.channels)
            except sd.PortAudioError as exc:
                raise AudioUnavailableError(
                    f"The speaker could not be opened to play the recording ({exc})."
                ) from None
            _log.info("Playing the recording %s on '%s'.", path.name, plan.name)
            block = max(1, round(BLOCK_S * source.samplerate))
            ahead = round(AHEAD_S * plan.rate)
            queued = 0
            while not self._stop.is_set():
                if buffer.depth >= ahead:
                    await self._wait_for_speaker()
                    continue
                raw = source.read(block, dtype="float32", always_2d=True)
                last = raw.shape[0] < block
                mono = _mix(raw)
                if resampler is not None:
                    mono = np.asarray(resampler.resample_chunk(mono, last=last), dtype=np.float32)
                buffer.push(mono)
                queued += mono.shape[0]
                if last:
                    break
            if self._stop.is_set():
                return queued / plan.rate
            # A file shorter than the start threshold would never start: pad to reach it.
            buffer.push(np.zeros(round(START_MS * plan.rate / 1000), dtype=np.float32))
            while not self._stop.is_set() and buffer.stats().played_samples < queued:
                await self._wait_for_speaker()
            return queued / plan.rate

    async def _wait_for_speaker(self) -> None:
        self._wake.clear()
        try:
            async with asyncio.timeout(SPEAKER_SILENT_LIMIT_S):
                await self._wake.wait()
        except TimeoutError:
            raise AudioUnavailableError(
                "The speaker stopped asking for audio; it may have been unplugged."
            ) from None

    def _open(self, sd: Any, index: int, rate: int, channels: int) -> None:
        self._stream = sd.OutputStream(
            device=index,
            samplerate=rate,
            channels=channels,
            dtype="float32",
            latency="high",  # nobody is waiting for a reply: smoothness beats delay
            callback=self._callback,
        )
        self._stream.start()

    def _callback(self, outdata: Any, _frames: int, _time: Any, _status: Any) -> None:
        # PortAudio's thread: copy out of the buffer, nudge the loop to refill, return.
        buffer = self._buffer
        if buffer is None:
            outdata.fill(0)
            return
        buffer.pull_into(outdata[:, 0])
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we were stopping
                loop.call_soon_threadsafe(self._wake.set)

    async def _close(self, *, drain: bool) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(_close_stream, stream, drain)
        self._buffer = None


def _mix(raw: Pcm) -> Pcm:
    """Sum the channels into one; the two sides of a conversation rarely speak at once."""
    mono = raw.sum(axis=1, dtype=np.float32) if raw.shape[1] > 1 else raw[:, 0]
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def _close_stream(stream: Any, drain: bool) -> None:
    with contextlib.suppress(Exception):
        # stop() waits until the device has played what it holds; abort() drops it.
        if drain:
            stream.stop(ignore_errors=True)
        else:
            stream.abort(ignore_errors=True)
    stream.close(ignore_errors=True)
