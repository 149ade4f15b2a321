"""Offline inference through the gateway, streamed through the real Kyutai server."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from tests.conformance.gateway_support import PERSONA, GatewayFactory
from tests.conformance.kyutai_env import KyutaiServer
from tests.conformance.talk import STEP_TIMEOUT
from tests.signals import tone

RATE = 24_000
INPUT_S = 1.5
SILENCE_S = 1.0
WAIT_S = 30  # the job API waits for the job to finish, up to this long per request


def _wav(pcm: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def _wav_info(data: bytes) -> tuple[int, int, int, int]:
    """(channels, bytes per sample, rate, frames) of a WAV answer."""
    with wave.open(io.BytesIO(data), "rb") as answer:
        return (
            answer.getnchannels(),
            answer.getsampwidth(),
            answer.getframerate(),
            answer.getnframes(),
        )


def _form(audio: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("audio", io.BytesIO(audio), filename="input.wav", content_type="audio/wav")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def _input(folder: Path) -> bytes:
    data = _wav(tone(330, INPUT_S))
    (folder / "input.wav").write_bytes(data)  # kept with the test's files for a reader
    return data


EXPECTED = (1, 2, RATE, round((INPUT_S + SILENCE_S) * RATE))
DONE = "done with connection"  # logged when the server's handler ends normally


async def _server_ended_normally(kyutai: KyutaiServer, done_before: int) -> None:
    """The engine closed the server's socket with a handshake, so the handler finished.

    Dropped without one while the server still answers frames in flight, the handler raises
    ("Cannot write to closing transport") and never logs DONE; waiting for DONE, rather than
    reading the log at teardown, catches that however late the server gets to it."""
    try:
        await kyutai.wait_for_count(DONE, done_before + 1, STEP_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"The server's handler did not end:\n{kyutai.log_tail(30)}") from None


async def test_inference_answers_a_file_through_the_real_server(
    make_kyutai_gateway: GatewayFactory, kyutai: KyutaiServer, tmp_path: Path
) -> None:
    gw = await make_kyutai_gateway()
    handled, done = len(kyutai.frame_times_ms()), kyutai.count(DONE)
    form = _form(_input(tmp_path), persona=PERSONA, silence_s=str(SILENCE_S))
    async with asyncio.timeout(4 * STEP_TIMEOUT):
        async with gw.http.post(
            gw.url + "/v1/inference", data=form, headers={"X-API-Key": gw.new_key()}
        ) as resp:
            body = await resp.read()
            assert resp.status == 200, body[:300]
            assert resp.headers["Content-Type"] == "audio/wav"
            assert "X-Transcript" in resp.headers
    assert _wav_info(body) == EXPECTED, "24 kHz mono 16-bit, input + silence long"
    assert len(kyutai.frame_times_ms()) > handled, "the real server did the work"
    await _server_ended_normally(kyutai, done)


async def test_job_runs_through_the_real_server(
    make_kyutai_gateway: GatewayFactory, kyutai: KyutaiServer, tmp_path: Path
) -> None:
    gw = await make_kyutai_gateway()
    headers = {"X-API-Key": gw.new_key()}
    handled, done = len(kyutai.frame_times_ms()), kyutai.count(DONE)
    form = _form(_input(tmp_path), persona=PERSONA, silence_s=str(SILENCE_S))
    async with gw.http.post(gw.url + "/v1/jobs", data=form, headers=headers) as resp:
        assert resp.status == 202, await resp.text()
        job_id = (await resp.json())["id"]
    job: dict[str, Any] = {}
    async with asyncio.timeout(4 * STEP_TIMEOUT):
        while job.get("state") != "done":
            # ?wait= answers as soon as the job finishes: nothing to sleep for.
            async with gw.http.get(
                gw.url + f"/v1/jobs/{job_id}", params={"wait": str(WAIT_S)}, headers=headers
            ) as resp:
                assert resp.status == 200, await resp.text()
                job = await resp.json()
            assert job["state"] not in ("failed", "cancelled"), job
        async with gw.http.get(gw.url + f"/v1/jobs/{job_id}/audio", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.read()
    assert _wav_info(body) == EXPECTED
    assert len(kyutai.frame_times_ms()) > handled, "the real server did the work"
    await _server_ended_normally(kyutai, done)
