"""gateway/pool/connect.py, the one way live sessions and offline jobs start on a model server:
a dead backend sends the caller back in line for another, a refusal keeps the backend in
service, and the handshake is awaited by moshi/session.py's rules. Real sockets throughout."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.gateway.pool.backends import BackendPool
from pplex_desktop.gateway.pool.connect import (
    Connected,
    StartError,
    await_handshake,
    connect_backend,
)
from pplex_desktop.gateway.pool.scheduler import Lease, Priority, Scheduler, Ticket
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.moshi.session import Handshake, MoshiProtocol
from pplex_desktop.sim.sim import SimServer
from tests.gateway.conftest import GatewayFactory

STEP_S = 5.0
QUERY = {"text_prompt": "Be brief.", "voice_prompt": "NATF2.pt"}


def dead_url() -> str:
    """An address where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


@dataclass
class Pool:
    pool: BackendPool
    scheduler: Scheduler

    async def wait_turn(self, ticket: Ticket | None) -> Lease:
        ticket = ticket or self.scheduler.enqueue(
            key_id=1, key_name="k", client="test", priority=Priority.LIVE, voice="NATF2.pt"
        )
        return await self.scheduler.acquire(ticket, STEP_S)

    async def open(self, what: str, ident: str, voice: str | None = "NATF2.pt") -> Connected:
        return await connect_backend(
            self.scheduler,
            self.pool,
            wait_turn=self.wait_turn,
            query=QUERY,
            voice=voice,
            what=what,
            ident=ident,
        )

    async def handshake(self, connected: Connected, protocol: MoshiProtocol) -> Handshake:
        """Await the handshake, then close the socket and free the model server either way."""
        try:
            return await await_handshake(connected.ws, protocol, asyncio.get_running_loop().time)
        finally:
            await connected.ws.close()
            self.scheduler.release(connected.lease)

    async def connect(self) -> tuple[Lease, MoshiProtocol]:
        connected = await self.open("session", "s1")
        protocol = MoshiProtocol(handshake_timeout=STEP_S)
        await self.handshake(connected, protocol)
        return connected.lease, protocol


PoolFactory = Callable[..., Awaitable[Pool]]


@pytest.fixture
async def make_pool() -> AsyncIterator[PoolFactory]:
    pools: list[BackendPool] = []

    async def make(*urls: str) -> Pool:
        pool = BackendPool(tuple(BackendConfig(u) for u in urls), FakeClock())
        await pool.open()
        pools.append(pool)
        for backend in pool.backends:
            backend.healthy = True  # as a health check would have it: up, until tried
        return Pool(pool, Scheduler(pool, max_queue=4))

    yield make
    for pool in pools:
        await pool.close()


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer()
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/api/chat", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def url_of(runner: web.AppRunner) -> str:
    return f"ws://127.0.0.1:{runner.addresses[0][1]}"


async def test_a_dead_backend_sends_the_caller_to_the_next_one(
    make_pool: PoolFactory, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await make_pool(dead_url(), sim.url or "")
    with caplog.at_level(logging.WARNING):
        lease, protocol = await asyncio.wait_for(pool.connect(), STEP_S)
    assert lease.backend is pool.pool.backends[1]
    assert lease.ticket.attempts == 1, "the caller was requeued once"
    assert pool.pool.backends[0].healthy is False
    assert protocol.is_open
    assert sim.stats.queries == [QUERY]
    assert any("could not be reached for session s1" in r.getMessage() for r in caplog.records)


async def test_when_every_backend_is_dead_the_caller_hears_why(make_pool: PoolFactory) -> None:
    pool = await make_pool(dead_url(), dead_url())
    with pytest.raises(StartError) as failed:
        await asyncio.wait_for(pool.connect(), STEP_S)
    assert failed.value.reason == "backend_unreachable"
    assert failed.value.message == (
        "The model server could not be reached (the connection was refused)."
    )
    assert [b.healthy for b in pool.pool.backends] == [False, False]
    assert pool.scheduler.waiting() == [] and not any(b.busy for b in pool.pool.backends)


async def test_a_refusal_of_the_request_keeps_the_backend_in_service(
    make_pool: PoolFactory,
) -> None:
    async def too_long(_request: web.Request) -> web.Response:
        return web.Response(status=414, text="URI too long")

    runner = await serve(too_long)
    try:
        pool = await make_pool(url_of(runner))
        with pytest.raises(StartError) as refused:
            await asyncio.wait_for(pool.connect(), STEP_S)
    finally:
        await runner.cleanup()
    assert refused.value.reason == "backend_refused"
    assert refused.value.message == "The model server refused this session's request (HTTP 414)."
    assert pool.pool.backends[0].healthy is True and not pool.pool.backends[0].busy


async def test_a_backend_that_closes_before_its_handshake_refused_the_session(
    make_pool: PoolFactory,
) -> None:
    async def close_at_once(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    runner = await serve(close_at_once)
    try:
        pool = await make_pool(url_of(runner))
        with pytest.raises(StartError, match="closed the session before it started") as refused:
            await asyncio.wait_for(pool.connect(), STEP_S)
    finally:
        await runner.cleanup()
    assert refused.value.reason == "backend_refused" and refused.value.backend_failed is None


async def test_no_handshake_in_time_fails_the_backend(make_pool: PoolFactory) -> None:
    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(b"\x01audio before any handshake")  # dropped, not a handshake
        async for _ in ws:
            pass
        return ws

    runner = await serve(silent)
    try:
        pool = await make_pool(url_of(runner))
        connected = await pool.open("job", "j1", voice=None)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(StartError) as timed_out:
            await pool.handshake(connected, MoshiProtocol(handshake_timeout=0.2))
        assert 0.2 <= loop.time() - began < STEP_S
    finally:
        await runner.cleanup()
    assert timed_out.value.reason == "backend_timeout"
    assert timed_out.value.message == "The model server sent no handshake within 0.2 s."
    assert timed_out.value.backend_failed == "no handshake"


async def test_a_chained_gateways_queue_pauses_the_handshake_clock(
    make_pool: PoolFactory,
) -> None:
    async def queued_then_ready(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(b"\x04" + json.dumps({"type": "queue", "position": 1}).encode())
        await asyncio.sleep(0.4)  # queued for longer than the handshake timeout below
        await ws.send_bytes(b"\x04" + json.dumps({"type": "status", "state": "x"}).encode())
        await ws.send_bytes(b"\x00")
        async for _ in ws:
            pass
        return ws

    runner = await serve(queued_then_ready)
    try:
        pool = await make_pool(url_of(runner))
        connected = await pool.open("job", "j2", voice=None)
        handshake = await pool.handshake(connected, MoshiProtocol(handshake_timeout=0.2))
        assert handshake.raw == b"\x00"
    finally:
        await runner.cleanup()


async def test_a_live_session_fails_over_from_a_dead_backend(
    make_gateway: GatewayFactory, sim: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    backends = (BackendConfig(dead_url(), name="dead"), BackendConfig(sim.url or ""))
    gw = await make_gateway(sims=0, backends=backends)
    gw.ctx.backends.backends[0].healthy = True
    with caplog.at_level(logging.WARNING):
        session = await MoshiSession.connect(
            gw.url, SessionOptions(api_key=gw.new_key(), handshake_timeout=STEP_S)
        )
    await session.close()
    assert sim.stats.sessions_started == 1
    assert gw.ctx.backends.backends[0].healthy is False
    assert any(
        r.getMessage().startswith("The model server dead could not be reached for session")
        for r in caplog.records
    )
