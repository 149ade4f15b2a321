"""Backends, the queue and the admin view, with real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from pplex_desktop.moshi.client import (
    ClosedEvent,
    ConnectError,
    HandshakeError,
    MoshiSession,
    SessionOptions,
)
from tests.gateway.conftest import GatewayFactory


def opts(key: str, **extra: str) -> SessionOptions:
    return SessionOptions(api_key=key, handshake_timeout=10, extra_query=extra)


async def test_two_backends_serve_two_sessions_at_once(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sims=2)
    a = await MoshiSession.connect(gw.url, opts(gw.new_key("a")))
    b = await MoshiSession.connect(gw.url, opts(gw.new_key("b")))
    assert [s.stats.sessions_started for s in gw.sims] == [1, 1]
    await a.close()
    await b.close()


async def test_third_caller_sees_position_one_and_is_served_next(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(sims=2)
    first = await MoshiSession.connect(gw.url, opts(gw.new_key("a")))
    second = await MoshiSession.connect(gw.url, opts(gw.new_key("b")))
    updates: list[Any] = []
    told = asyncio.Event()

    def on_metadata(data: Any) -> None:
        updates.append(data)
        told.set()

    third = asyncio.create_task(
        MoshiSession.connect(
            gw.url, opts(gw.new_key("c"), pplex_status="1"), on_metadata=on_metadata
        )
    )
    await asyncio.wait_for(told.wait(), 5)
    assert {k: updates[0][k] for k in ("type", "position")} == {"type": "queue", "position": 1}
    async with await gw.admin("GET", "/admin/sessions") as resp:
        listed = await resp.json()
    assert [s["key_name"] for s in listed["active"]] == ["a", "b"]
    assert [(s["key_name"], s["queue_position"]) for s in listed["queued"]] == [("c", 1)]
    assert not third.done()
    await second.close()
    session = await asyncio.wait_for(third, 5)
    assert [u["state"] for u in updates if u["type"] == "status"] == ["connecting", "preparing"]
    await session.close()
    await first.close()


async def test_native_callers_wait_without_extra_messages(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    key_a, key_b = gw.new_key("a"), gw.new_key("b")
    holder = await MoshiSession.connect(gw.url, opts(key_a))
    url = gw.ws_url + f"/api/chat?api_key={key_b}"
    async with websockets.connect(url, compression=None, proxy=None) as ws:
        await gw.wait_sessions(lambda _r: len(gw.ctx.scheduler.waiting()) == 1)
        await holder.close()
        assert await asyncio.wait_for(ws.recv(), 5) == b"\x00", "the handshake comes first"


async def test_full_queue_is_refused_before_the_upgrade(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(queue_max=1)
    holder = await MoshiSession.connect(gw.url, opts(gw.new_key("a")))
    waiting = asyncio.create_task(MoshiSession.connect(gw.url, opts(gw.new_key("b"))))
    await gw.wait_sessions(lambda _r: len(gw.ctx.scheduler.waiting()) == 1)
    key = gw.new_key("c")
    async with gw.http.get(
        gw.url + "/api/chat",
        params={"api_key": key},
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "queue_full"
    await holder.close()
    await (await asyncio.wait_for(waiting, 5)).close()


async def test_queue_wait_limit_closes_with_1013(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(queue_max_wait_s=0.3)
    holder = await MoshiSession.connect(gw.url, opts(gw.new_key("a")))
    with pytest.raises(HandshakeError, match=r"1013: No model server became free within 0\.3 s"):
        await MoshiSession.connect(gw.url, opts(gw.new_key("b")))
    await holder.close()


async def test_admin_can_end_a_session(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    session = await MoshiSession.connect(gw.url, opts(gw.new_key("victim")))
    async with await gw.admin("GET", "/admin/sessions") as resp:
        (active,) = (await resp.json())["active"]
    assert active["state"] == "live" and active["route"] == "/api/chat"
    async with await gw.admin("DELETE", f"/admin/sessions/{active['id']}") as resp:
        assert resp.status == 200
    events = [e async for e in session.events()]
    assert events[-1] == ClosedEvent(1008, "An administrator ended this session.")
    async with await gw.admin("DELETE", "/admin/sessions/nope") as resp:
        assert resp.status == 404


async def test_no_backend_reachable_is_503(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sims=0)
    await gw.ctx.backends.check_all()
    with pytest.raises(ConnectError, match="HTTP 503: No model server is reachable"):
        await MoshiSession.connect(gw.url, opts(gw.new_key()))


async def test_queue_wait_does_not_count_against_the_handshake_timeout(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    holder = await MoshiSession.connect(gw.url, opts(gw.new_key("a")))
    waiting = asyncio.create_task(
        MoshiSession.connect(
            gw.url,
            SessionOptions(
                api_key=gw.new_key("b"), handshake_timeout=0.2, extra_query={"pplex_status": "1"}
            ),
        )
    )
    await gw.wait_sessions(lambda _r: len(gw.ctx.scheduler.waiting()) == 1)
    # Longer than the handshake timeout, spent in the queue: the client must still wait.
    done, _ = await asyncio.wait({waiting}, timeout=0.5)
    assert not done
    await holder.close()
    session = await asyncio.wait_for(waiting, 5)
    await session.close()
