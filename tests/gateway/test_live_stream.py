"""/ws/stream: raw PCM in and out, JSON messages, the original gateway's simple protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import numpy as np
import pytest

from pplex_desktop.moshi.codec import FRAME_SAMPLES
from tests.gateway.conftest import Gateway
from tests.signals import dominant_frequency, tone


async def stream_session(
    gateway: Gateway,
    key: str,
    pcm: np.ndarray,
    *,
    fmt: str = "s16le",
    chunk: int = 2400,
    want_samples: int | None = None,
    params: dict[str, str] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    query = {"api_key": key, "persona": "Speak like a pirate.", "voice": "VARF3", **(params or {})}
    if fmt != "s16le":
        query["format"] = fmt
    audio: list[np.ndarray] = []
    messages: list[dict[str, Any]] = []
    dtype = "<i2" if fmt == "s16le" else "<f4"
    payload = (
        (pcm * 32767).astype(dtype).tobytes() if fmt == "s16le" else pcm.astype(dtype).tobytes()
    )
    want = want_samples if want_samples is not None else (len(pcm) // FRAME_SAMPLES) * FRAME_SAMPLES
    async with gateway.http.ws_connect(gateway.ws_url + "/ws/stream", params=query) as ws:
        while True:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            messages.append(json.loads(msg.data))
            if messages[-1]["type"] == "ready":
                break

        async def send() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            step = chunk * np.dtype(dtype).itemsize
            for i in range(0, len(payload), step):
                await asyncio.sleep(
                    max(0.0, start + i / np.dtype(dtype).itemsize / 24_000 - 0.5 - loop.time())
                )
                await ws.send_bytes(payload[i : i + step])

        sender = asyncio.create_task(send())
        got = 0
        while got < want:
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type is aiohttp.WSMsgType.BINARY:
                samples = np.frombuffer(msg.data, dtype=dtype).astype(np.float32)
                if fmt == "s16le":
                    samples /= 32768.0
                audio.append(samples)
                got += len(samples)
            elif msg.type is aiohttp.WSMsgType.TEXT:
                messages.append(json.loads(msg.data))
            else:
                break
        await sender
    return (np.concatenate(audio) if audio else np.zeros(0, np.float32)), messages


@pytest.mark.parametrize("fmt", ["s16le", "f32le"])
async def test_pcm_round_trip_with_text(gateway: Gateway, fmt: str) -> None:
    key = gateway.new_key()
    # 1 s in odd-sized chunks: the gateway frames PCM of any size (and half samples).
    y, messages = await stream_session(gateway, key, tone(440, 2.0), fmt=fmt, chunk=1001)
    assert len(y) == 25 * FRAME_SAMPLES
    assert dominant_frequency(y[FRAME_SAMPLES:]) == pytest.approx(440, abs=3)
    assert messages[0]["type"] in ("queue", "ready")
    spoken = "".join(m["text"] for m in messages if m["type"] == "text")
    assert spoken.startswith(" Speak like a")
    assert gateway.sims[0].stats.queries[-1]["voice_prompt"] == "VARF3.pt"


async def test_bad_format_is_refused(gateway: Gateway) -> None:
    key = gateway.new_key()
    async with gateway.http.get(
        gateway.url + "/ws/stream", params={"api_key": key, "format": "mp3"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_format"


async def test_end_message_and_close_code_on_a_model_error(gateway: Gateway) -> None:
    from pplex_desktop.sim.sim import SimConfig

    gw_sim = gateway.sims[0]
    gw_sim.config = SimConfig(error_after_frames=3)
    key = gateway.new_key()
    messages = []
    async with gateway.http.ws_connect(
        gateway.ws_url + "/ws/stream", params={"api_key": key}
    ) as ws:
        await ws.send_bytes(np.zeros(FRAME_SAMPLES * 6, "<i2").tobytes())
        ready = False
        while True:
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type is aiohttp.WSMsgType.TEXT:
                messages.append(json.loads(msg.data))
                if messages[-1]["type"] == "ready" and not ready:
                    ready = True
                    await ws.send_bytes(np.zeros(FRAME_SAMPLES * 6, "<i2").tobytes())
            elif msg.type is not aiohttp.WSMsgType.BINARY:
                break
        assert ws.close_code == 1011
    kinds = [m["type"] for m in messages]
    assert {
        "type": "error",
        "code": "model_error",
        "message": "simulated model failure",
    } in messages
    assert kinds[-2:] == ["error", "end"]
    assert messages[-1]["reason"] == "backend_failed"
