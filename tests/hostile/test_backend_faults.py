"""One caller's request or audio must never take a model server out of service for everyone.

A backend leaves service only for faults of its own (refused connections, timeouts, crashes
with no client cause); a refusal of one caller's request or audio is that caller's error.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.moshi.ogg import OggPage, split_pages
from pplex_desktop.sim.sim import REQUEST_LINE_LIMIT, SimConfig
from tests.hostile.faults_support import (
    CJK_PERSONA,
    Gateway,
    GatewayFactory,
    Witness,
    gateway,  # noqa: F401 (a fixture)
    make_gateway,  # noqa: F401 (a fixture)
    multipart,
    native_audio,
    tiny_wav,
    witness,  # noqa: F401 (a fixture)
)
from tests.raw_http import raw_request, upgrade_request


def in_service(gw: Gateway) -> bool:
    return all(b.healthy is True for b in gw.ctx.backends.backends)


async def _upload(
    gw: Gateway, seen: Witness, path: str, key: str, seconds: float = 0.2, **fields: str
) -> Any:
    body, content_type = await multipart(tiny_wav(seconds), **fields)
    async with gw.http.post(
        gw.url + path, data=body, headers={"X-API-Key": key, "Content-Type": content_type}
    ) as resp:
        text = await seen.read(resp)
        return resp.status, (await resp.json()) if text.startswith("{") else text


async def _chat_works(gw: Gateway, key: str) -> None:
    """A well-behaved caller still gets a conversation: the backend is in service."""
    async with gw.http.ws_connect(
        gw.ws_url + "/api/chat", params={"api_key": key, "voice_prompt": "NATF1"}
    ) as ws:
        first = await asyncio.wait_for(ws.receive(), 10)
        assert first.type is aiohttp.WSMsgType.BINARY and first.data[:1] == b"\x00"
        await ws.close()


@pytest.mark.expect_error_logs  # aiohttp logs the refused line, in the sim as in the servers
async def test_sim_refuses_a_request_line_over_8190_bytes_like_the_real_servers(
    gateway: Gateway,  # noqa: F811
) -> None:
    sim = gateway.sims[0]
    assert sim.url is not None
    host, port = sim.url.removeprefix("http://").rsplit(":", 1)
    # aiohttp's limit is on the request target (the path and query of the request line).
    for length, status in ((REQUEST_LINE_LIMIT, 101), (REQUEST_LINE_LIMIT + 1, 400)):
        base = "/api/chat?voice_prompt=NATF1.pt&text_prompt="
        target = base + "a" * (length - len(base))
        got, _headers, _body = await raw_request(host, int(port), upgrade_request(target))
        assert got == status, length
    assert len(sim.stats.queries) == 1  # only the first reached the handler


async def test_a_persona_too_long_once_encoded_is_refused_on_every_route(
    gateway: Gateway,  # noqa: F811
    witness: Witness,  # noqa: F811
) -> None:
    gw = gateway
    key = witness.secret(gw.new_key("long persona", rpm=10_000, max_sessions=5))
    # Through uploads: a form field has no URL limit, so 1,000 CJK characters arrive whole.
    for path in ("/v1/inference", "/v1/jobs"):
        status, answer = await _upload(gw, witness, path, key, persona=CJK_PERSONA)
        assert status == 400, str(answer)[:300]
        assert answer["error"]["code"] == "persona_too_long"
        assert "9000 bytes once URL-encoded" in answer["error"]["message"]
        assert "6144 encoded bytes" in answer["error"]["message"]
        assert in_service(gw)
    # Through the live routes and the talk page's check: 906 CJK characters (8,154 bytes
    # encoded) fit the gateway's own 8,190-byte request target with the key in a header, and
    # not the model server's once its longer parameter names are added.
    persona = quote(CJK_PERSONA[:906])
    assert gw.runner.address is not None
    host, port = gw.runner.address.host, gw.runner.address.port
    for target, upgrade in (
        (f"/ws/stream?persona={persona}", True),
        (f"/api/chat?persona={persona}&voice=NATF1", True),
        (f"/v1/stream/check?persona={persona}", False),
    ):
        request = upgrade_request(target, upgrade=upgrade, X_API_Key=key)
        status, _headers, body = await raw_request(host, port, request)
        witness.bodies.append(body.decode())
        witness.statuses.append(status)
        assert status == 400, (target[:20], body[:200])
        assert b"persona_too_long" in body
        assert in_service(gw)
    assert gw.sims[0].stats.queries == []  # nothing too long ever reached the model server
    await _chat_works(gw, key)


@pytest.mark.expect_error_logs  # aiohttp logs the refused lines, in the sim as in the servers
async def test_a_backend_refusing_one_request_stays_in_service(
    make_gateway: GatewayFactory,  # noqa: F811
    witness: Witness,  # noqa: F811
) -> None:
    """The model server answers the upgrade with 400 (its request line is too long)."""
    probe = await make_gateway()
    sim_url = probe.sims[0].url
    assert sim_url is not None
    # A path so long that every upgrade to it passes 8,190 bytes, while the health check's
    # GET of the same path (shorter by /api/chat and the query) is still answered.
    prefix = "/" + "p" * (REQUEST_LINE_LIMIT - 20)
    gw = await make_gateway(sims=0, backends=(BackendConfig(sim_url + prefix),))
    key = witness.secret(gw.new_key("refused", rpm=10_000, max_sessions=5))
    witness.expected_5xx = {502}  # every job to this backend is refused: a bad gateway
    for _attempt in range(3):
        async with gw.http.ws_connect(
            gw.ws_url + "/api/chat", params={"api_key": key, "voice_prompt": "NATF1"}
        ) as ws:
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1014
            assert "refused this session's request (HTTP 400)" in str(msg.extra)
        assert in_service(gw)
        status, answer = await _upload(gw, witness, "/v1/inference", key, silence_s="0")
        assert status == 502, str(answer)[:300]
        assert answer["error"]["code"] == "backend_refused"
        assert in_service(gw)
    errors = {r.name for r in witness.caplog.records if r.levelno >= logging.ERROR}
    assert errors == {"aiohttp.server"}  # the sim's; the gateway logged no error


async def _live_session(gw: Gateway, key: str) -> aiohttp.ClientWebSocketResponse:
    ws = await gw.http.ws_connect(
        gw.ws_url + "/api/chat", params={"api_key": key, "voice_prompt": "NATF1"}
    )
    first = await asyncio.wait_for(ws.receive(), 10)
    assert first.type is aiohttp.WSMsgType.BINARY and first.data[:1] == b"\x00"
    return ws


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, str(msg.extra or "")


def _corrupt_packet(message: bytes) -> bytes:
    """A kind-0x01 message whose Ogg pages are intact but whose Opus packets are garbage."""
    rng = __import__("random").Random(11)
    pages = split_pages(message[1:])
    body = bytes([0xFF, 0xFF]) + bytes(rng.randrange(256) for _ in range(len(pages[0].body) - 2))
    p = pages[0]
    pages[0] = OggPage(p.header_type, p.granule, p.serial, p.sequence, p.lacing, body)
    return b"\x01" + b"".join(page.to_bytes() for page in pages)


@pytest.mark.parametrize("attack", ["random bytes first", "garbage packet mid-stream"])
async def test_corrupt_client_audio_is_refused_and_the_backend_stays(
    gateway: Gateway,  # noqa: F811
    witness: Witness,  # noqa: F811
    attack: str,
) -> None:
    gw = gateway
    key = witness.secret(gw.new_key("noisy", rpm=10_000, max_sessions=2))
    stream = native_audio(6)
    ws = await _live_session(gw, key)
    if attack == "random bytes first":
        await ws.send_bytes(b"\x01" + os.urandom(500))
    else:
        for message in stream[:4]:
            await ws.send_bytes(message)
        await ws.send_bytes(_corrupt_packet(stream[4]))
    code, reason = await _closed(ws)
    assert code == 1007, reason
    assert reason.startswith("The audio is not a valid Ogg Opus stream")
    await gw.sessions_done()
    assert in_service(gw)
    frames_before = gw.sims[0].stats.frames_in
    await _chat_works(gw, key)
    assert gw.sims[0].stats.frames_in == frames_before
    assert not any("corrupt stream" in line for line in witness.log_lines())


@pytest.mark.parametrize(
    ("fault", "client_code", "stays"),
    [
        # The model server refuses what it was sent, with a close frame: it is alive.
        ({"invalid_after_frames": 3}, 1007, True),
        # It drops TCP with no cause in what the client sent: that is a crash.
        ({"close_after_frames": 3}, 1011, False),
    ],
)
async def test_a_refusal_of_input_is_told_apart_from_a_crash(
    make_gateway: GatewayFactory,  # noqa: F811
    witness: Witness,  # noqa: F811
    fault: dict[str, int],
    client_code: int,
    stays: bool,
) -> None:
    gw = await make_gateway(sim_config=SimConfig(**fault))  # type: ignore[arg-type]
    key = witness.secret(gw.new_key("caller", rpm=10_000))
    ws = await _live_session(gw, key)
    for message in native_audio(8):
        await ws.send_bytes(message)
        await asyncio.sleep(0.08)  # paced like a microphone
        if ws.closed:
            break
    code, reason = await _closed(ws)
    assert code == client_code, reason
    if stays:
        assert "because it received invalid data (close code 1007)" in reason
    await gw.sessions_done()
    assert in_service(gw) is stays
    # Offline jobs follow the same rule.
    if stays:
        witness.expected_5xx = {502}  # the model server refuses the job's audio
        status, answer = await _upload(gw, witness, "/v1/inference", key, 1.0, silence_s="0")
        assert status == 502, str(answer)[:300]
        assert "(close code 1007)" in answer["error"]["message"]
        assert in_service(gw)
