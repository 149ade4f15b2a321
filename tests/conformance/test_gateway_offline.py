"""Offline inference through the gateway, streamed through the real Kyutai server."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from pplex_desktop.gateway import offline_engine
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


@pytest.fixture(autouse=True)
def _patient_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the answer is complete the engine still has up to a window of frames in flight,
    and closes with a 2 s grace for the server to answer them. On a loaded CPU the real server
    took up to 2.8 s for one frame: it would be cut off and raise ("Cannot write to closing
    transport"), which the tier counts as a fault. These tests check the answer, not how long
    a slow server is waited for."""
    monkeypatch.setattr(offline_engine, "CLOSE_TIMEOUT_S", STEP_TIMEOUT)


async def test_inference_answers_a_file_through_the_real_server(
    make_kyutai_gateway: GatewayFactory, kyutai: KyutaiServer, tmp_path: Path
) -> None:
    gw = await make_kyutai_gateway()
    handled = len(kyutai.frame_times_ms())
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


async def test_job_runs_through_the_real_server(
    make_kyutai_gateway: GatewayFactory, kyutai: KyutaiServer, tmp_path: Path
) -> None:
    gw = await make_kyutai_gateway()
    headers = {"X-API-Key": gw.new_key()}
    handled = len(kyutai.frame_times_ms())
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
