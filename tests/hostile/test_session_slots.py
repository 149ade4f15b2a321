"""A key's session slot is free the moment its client closes cleanly, not when teardown ends."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.hostile.faults_support import (
    Gateway,
    Witness,
    gateway,  # noqa: F401 (a fixture)
    make_gateway,  # noqa: F401 (a fixture the gateway fixture needs)
    witness,  # noqa: F401 (a fixture)
)

TRIES = 20


async def test_an_immediate_reconnect_after_a_clean_close_is_accepted(
    gateway: Gateway,  # noqa: F811
    witness: Witness,  # noqa: F811
) -> None:
    gw = gateway
    key = witness.secret(gw.new_key("one at a time", rpm=10_000, max_sessions=1))
    params = {"api_key": key, "voice_prompt": "NATF1"}
    refused: list[int] = []
    for _ in range(TRIES):
        try:
            ws = await gw.http.ws_connect(gw.ws_url + "/api/chat", params=params)
        except aiohttp.WSServerHandshakeError as exc:
            refused.append(exc.status)
            continue
        first = await asyncio.wait_for(ws.receive(), 10)
        assert first.type is aiohttp.WSMsgType.BINARY and first.data[:1] == b"\x00"
        await ws.close()  # returns once the gateway has answered the close
        assert ws.close_code == 1000
    assert refused == [], f"{len(refused)} of {TRIES} reconnects were refused: {refused}"
    await gw.sessions_done()
    # The slot is still enforced: two at once is one too many.
    first_ws = await gw.http.ws_connect(gw.ws_url + "/api/chat", params=params)
    try:
        second = gw.http.ws_connect(gw.ws_url + "/api/chat", params=params)
        try:
            await second
        except aiohttp.WSServerHandshakeError as exc:
            witness.statuses.append(exc.status)
            assert exc.status == 429
        else:
            raise AssertionError("a second session of a one-session key was accepted")
    finally:
        await first_ws.close()
