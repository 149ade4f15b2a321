"""The decoded model stream shared by /ws/stream and /v1/realtime, against a scripted model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import WSMsgType, web

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from tests.gateway.conftest import GatewayFactory

CORRUPT = b"\x01" + b"this is no Ogg page" * 4
Script = list[bytes]


def _good_audio() -> bytes:
    tone = np.sin(np.arange(FRAME_SAMPLES * 4) * 0.05).astype(np.float32) * 0.3
    encoder = OpusEncoder()
    return b"".join(
        encoder.encode(tone[i : i + FRAME_SAMPLES]) for i in range(0, len(tone), FRAME_SAMPLES)
    )


@pytest.fixture
async def scripted_model() -> AsyncIterator[Callable[[Script], str]]:
    """A model server that sends the handshake, then ``script``, then waits for the close."""
    scripts: list[Script] = []

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def chat(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(b"\x00")
        for message in scripts[-1]:
            await ws.send_bytes(message)
        async for _msg in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_get("/api/chat", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    def serve(script: Script) -> str:
        scripts.append(script)
        return url

    yield serve
    await runner.cleanup()


async def _stream(gw: Any, key: str) -> tuple[list[dict[str, Any]], int, int | None]:
    """Everything /ws/stream said: its JSON messages, PCM bytes, and the close code."""
    texts: list[dict[str, Any]] = []
    pcm = 0
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{gw.ws_url}/ws/stream?api_key={key}")
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                texts.append(json.loads(msg.data))
            elif msg.type is WSMsgType.BINARY:
                pcm += len(msg.data)
        return texts, pcm, ws.close_code


async def test_corrupt_model_audio_ends_a_stream_with_a_sentence(
    make_gateway: GatewayFactory, scripted_model: Callable[[Script], str]
) -> None:
    url = scripted_model([proto.encode(proto.Text("hello")), CORRUPT])
    gw = await make_gateway(sims=0, backends=(BackendConfig(url),))
    texts, _pcm, code = await _stream(gw, gw.new_key())
    assert code == CloseCode.BACKEND_ERROR
    assert {"type": "text", "text": "hello"} in texts
    end = texts[-1]
    assert end["type"] == "end" and end["reason"] == "backend_failed"
    assert end["message"].startswith("The model server's audio is corrupt: ")
    await gw.sessions_done()
    assert gw.ctx.backends.backends[0].healthy is False  # corrupt audio means a broken server


async def test_model_audio_text_and_errors_reach_a_stream_client(
    make_gateway: GatewayFactory, scripted_model: Callable[[Script], str]
) -> None:
    script = [
        proto.encode(proto.Audio(_good_audio())),
        b"\x7f unknown kind",  # skipped, as a newer model's message would be
        proto.encode(proto.Error("the model hiccuped")),
        proto.encode(proto.Text("bye")),
    ]
    gw = await make_gateway(sims=0, backends=(BackendConfig(scripted_model(script)),))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{gw.ws_url}/ws/stream?api_key={gw.new_key()}")
        texts: list[dict[str, Any]] = []
        pcm = 0
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                texts.append(json.loads(msg.data))
                if texts[-1] == {"type": "text", "text": "bye"}:
                    break
            elif msg.type is WSMsgType.BINARY:
                pcm += len(msg.data)
        await ws.close()
    assert pcm > 0
    assert {"type": "error", "code": "model_error", "message": "the model hiccuped"} in texts
    await gw.sessions_done()
    assert gw.ctx.backends.backends[0].healthy is not False


async def test_corrupt_model_audio_ends_a_realtime_call_as_a_server_error(
    make_gateway: GatewayFactory, scripted_model: Callable[[Script], str]
) -> None:
    gw = await make_gateway(sims=0, backends=(BackendConfig(scripted_model([CORRUPT])),))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{gw.ws_url}/v1/realtime?api_key={gw.new_key()}", protocols=("realtime",)
        )
        await ws.send_str(json.dumps({"type": "response.create"}))
        events = [json.loads(m.data) async for m in ws if m.type is WSMsgType.TEXT]
        code = ws.close_code
    assert code == CloseCode.BACKEND_ERROR
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert errors[-1]["code"] == "backend_failed"
    assert errors[-1]["type"] == "server_error"
    assert errors[-1]["message"].startswith("The model server's audio is corrupt: ")
