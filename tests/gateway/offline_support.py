"""Helpers for the offline tests: real speech files, uploads and result checks."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf

from pplex_desktop.gateway.events import JobChanged, JobsExpired
from pplex_desktop.moshi.audiofile import read_mono
from tests.signals import Pcm, tone
from tests.skips import skip_or_fail

PERSONA = "You are a sarcastic robot."


def speech_wav(folder: Path, name: str, *, rate: int, channels: int, text: str) -> Path:
    """A sentence spoken by espeak-ng, converted by sox to ``rate`` Hz and ``channels``."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        skip_or_fail("espeak-ng and sox are needed (./dev.sh test installs them).")
    raw = folder / f"{name}-espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    out = folder / f"{name}.wav"
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", str(channels), "-b", "16", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def form(audio: bytes | None, filename: str = "input.wav", **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    if audio is not None:
        # BytesIO: aiohttp warns that large raw bytes bodies may block the loop.
        data.add_field("audio", io.BytesIO(audio), filename=filename, content_type="audio/wav")
    for name, value in fields.items():
        data.add_field(name, value)
    return data


def wav_of(response_body: bytes) -> tuple[Pcm, int, str, int]:
    """Samples, rate, subtype and channels of a WAV answer."""
    with sf.SoundFile(io.BytesIO(response_body)) as handle:
        info = (handle.samplerate, handle.subtype, handle.channels)
        data = handle.read(dtype="float32")
    return np.asarray(data, dtype=np.float32), *info


def echo_correlation(source: Path, answer: Pcm, max_lag: int = 2_400) -> float:
    """Peak normalised correlation between the input (at 24 kHz) and the echoed answer."""
    x = read_mono(source).astype(np.float64)
    y = answer[: len(x) + max_lag].astype(np.float64)
    size = 1 << (len(x) + len(y)).bit_length()
    spectrum = np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size))
    lags = np.fft.irfft(spectrum, size)[:max_lag]
    return float(np.max(lags) / (np.linalg.norm(x) * np.linalg.norm(y[: len(x)]) + 1e-12))


async def error_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    error: dict[str, Any] = body["error"]
    return error


class JobEvents:
    """Records the gateway's job events so a test can await one instead of polling."""

    def __init__(self, hub: Any) -> None:
        self.seen: list[Any] = []
        self._changed = asyncio.Event()
        self._hub = hub
        hub.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, JobChanged | JobsExpired):
            self.seen.append(event)
            self._changed.set()

    async def wait_for(self, predicate: Callable[[Any], bool], limit_s: float = 20) -> Any:
        async with asyncio.timeout(limit_s):
            while True:
                for event in self.seen:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        self._hub.unsubscribe(self._on_event)


def tone_wav(seconds: float, rate: int = 24_000) -> bytes:
    out = io.BytesIO()
    sf.write(out, tone(440, seconds, rate), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


async def submit(gw: Any, key: str, audio: bytes, **fields: str) -> dict[str, Any]:
    async with gw.http.post(
        gw.url + "/v1/jobs", headers={"X-API-Key": key}, data=form(audio, "tone.wav", **fields)
    ) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 202, body
        assert resp.headers["Location"] == body["url"]
    return body


async def finished(gw: Any, key: str, job_id: str) -> dict[str, Any]:
    """Long-poll the job until it is finished."""
    while True:
        async with gw.http.get(
            gw.url + f"/v1/jobs/{job_id}", params={"wait": "30"}, headers={"X-API-Key": key}
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
        if body["state"] in ("done", "failed", "cancelled"):
            return body
