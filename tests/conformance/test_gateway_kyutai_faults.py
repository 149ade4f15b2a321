"""A client's corrupt audio against the real Kyutai server: refused at the gateway.

The real server, fed a corrupt Ogg stream, drops TCP without a close frame (PROTOCOL.md), which
the gateway could not tell from a crash. So the gateway checks the client's audio and ends the
session with 1007 before any of it reaches the server: the server logs no fault, and stays in
service for the next caller.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.client import MoshiSession
from tests.conformance.gateway_support import VOICE, KyutaiGateway
from tests.conformance.kyutai_env import KyutaiServer
from tests.conformance.talk import STEP_TIMEOUT, exchange, noise_frames
from tests.conformance.test_gateway_kyutai import DONE, via


async def test_corrupt_client_audio_never_reaches_the_real_server(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer
) -> None:
    done = kyutai.count(DONE)
    log_before = len(kyutai.log_text())
    key = kyutai_gateway.new_key()
    async with kyutai_gateway.http.ws_connect(
        kyutai_gateway.ws_url + "/api/chat", params={"api_key": key, "voice_prompt": VOICE}
    ) as ws:
        first = await asyncio.wait_for(ws.receive(), STEP_TIMEOUT)
        assert first.type is aiohttp.WSMsgType.BINARY and first.data == proto.encode(
            proto.Handshake()
        )
        await ws.send_bytes(b"\x01" + os.urandom(500))
        closing = await asyncio.wait_for(ws.receive(), STEP_TIMEOUT)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1007
        assert str(closing.extra).startswith("The audio is not a valid Ogg Opus stream")
    # The gateway closed the server's socket with a handshake: its handler ends normally.
    await kyutai.wait_for_count(DONE, done + 1, STEP_TIMEOUT)
    new = kyutai.log_text()[log_before:]
    assert "Traceback" not in new and "[Err ]" not in new, new[-2000:]
    assert all(b.healthy is True for b in kyutai_gateway.ctx.backends.backends)
    async with await MoshiSession.connect(kyutai_gateway.url, via(key)) as s:
        talk = await exchange(s, noise_frames(3), expect=2)
    assert len(talk.audio) == 2
