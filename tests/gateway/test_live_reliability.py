"""How live sessions end: every gateway decision carries a close code and a sentence."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import numpy as np
import pytest
import websockets
from aiohttp import web

from pplex_desktop.moshi.client import (
    AudioEvent,
    ClosedEvent,
    HandshakeError,
    MoshiSession,
    SessionOptions,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from pplex_desktop.sim.sim import SimConfig
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.signals import tone


def opts(key: str) -> SessionOptions:
    return SessionOptions(api_key=key, handshake_timeout=10)


async def talk_until_closed(session: MoshiSession, seconds: float = 30.0) -> ClosedEvent:
    """Send paced silence frames until the gateway closes the session; return how."""

    async def pump() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(int(seconds / 0.08)):
            await asyncio.sleep(max(0.0, start + i * 0.08 - loop.time()))
            await session.send_frame(np.zeros(FRAME_SAMPLES, np.float32))

    sender = asyncio.create_task(pump())
    try:
        async for event in session.events():
            if isinstance(event, ClosedEvent):
                return event
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    raise AssertionError("the event stream ended without a ClosedEvent")


async def test_revocation_closes_a_live_session_within_a_second(gateway: Gateway) -> None:
    made = gateway.store.create("revokable")
    session = await MoshiSession.connect(gateway.url, opts(made.key))
    loop = asyncio.get_running_loop()
    closing = asyncio.create_task(talk_until_closed(session))
    await gateway.wait_sessions(lambda r: r.live_count == 1)
    revoked_at = loop.time()
    gateway.store.revoke(made.record.id)
    closed = await asyncio.wait_for(closing, 5)
    assert loop.time() - revoked_at < 1.0
    assert closed == ClosedEvent(1008, "The API key of this session was revoked or has expired.")
    await gateway.sims[0].wait_until(lambda s: s.sessions_finished == 1)


async def test_backend_killed_mid_session(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sims=2)
    gw.sims[0].config = SimConfig(close_after_frames=5)
    session = await MoshiSession.connect(gw.url, opts(gw.new_key("a")))
    assert gw.sims[0].stats.sessions_started == 1
    loop = asyncio.get_running_loop()
    closed = await asyncio.wait_for(talk_until_closed(session), 10)
    died_at = loop.time()
    assert closed == ClosedEvent(1011, "The model server closed the connection unexpectedly.")
    assert gw.ctx.backends.backends[0].healthy is False
    assert loop.time() - died_at < 1.0
    # The next caller goes to the healthy backend, not the one that just failed.
    async with await MoshiSession.connect(gw.url, opts(gw.new_key("b"))):
        assert gw.sims[1].stats.sessions_started == 1
        assert gw.sims[0].stats.sessions_started == 1


async def test_backend_stopping_tells_the_client(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    session = await MoshiSession.connect(gw.url, opts(gw.new_key()))
    closing = asyncio.create_task(talk_until_closed(session))
    await gw.wait_sessions(lambda r: r.live_count == 1)
    await gw.sims[0].stop()
    closed = await asyncio.wait_for(closing, 5)
    assert closed.code == 1011


async def test_backend_that_refuses_the_session_is_1014(make_gateway: GatewayFactory) -> None:
    # The gateway believes the backend has every voice; the server itself only has one.
    gw = await make_gateway(sim_config=SimConfig(voices=("NATF0.pt",)))
    with pytest.raises(
        HandshakeError, match="close code 1014: The model server closed the session"
    ):
        await MoshiSession.connect(
            gw.url, SessionOptions(api_key=gw.new_key(), voice_prompt="NATM1")
        )


async def test_unreachable_chat_endpoint_is_1014(make_gateway: GatewayFactory) -> None:
    """A server that answers health checks but not /api/chat."""

    async def up(_request: web.Request) -> web.Response:
        return web.Response(text="up")

    app = web.Application()
    app.router.add_get("/", up)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        from pplex_desktop.core.settings import BackendConfig

        gw = await make_gateway(sims=0, backends=(BackendConfig(f"http://127.0.0.1:{port}"),))
        with pytest.raises(
            HandshakeError, match="close code 1014: The model server could not be reached"
        ):
            await MoshiSession.connect(gw.url, opts(gw.new_key()))
    finally:
        await runner.cleanup()


async def test_gateway_shutdown_is_1001(gateway: Gateway) -> None:
    session = await MoshiSession.connect(gateway.url, opts(gateway.new_key()))
    closing = asyncio.create_task(talk_until_closed(session))
    await gateway.wait_sessions(lambda r: r.live_count == 1)
    await gateway.runner.stop()
    closed = await asyncio.wait_for(closing, 5)
    assert closed == ClosedEvent(1001, "The gateway is shutting down.")


async def test_idle_client_is_closed(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(idle_timeout_s=0.3)
    session = await MoshiSession.connect(gw.url, opts(gw.new_key()))
    events = [e async for e in session.events()]
    assert events[-1] == ClosedEvent(1008, "No audio arrived for 0.3 s.")


async def test_session_length_limit(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(max_session_s=0.5)
    session = await MoshiSession.connect(gw.url, opts(gw.new_key()))
    closed = await asyncio.wait_for(talk_until_closed(session), 5)
    assert closed == ClosedEvent(1008, "The session reached its length limit of 0.5 s.")


async def test_audio_faster_than_real_time_is_refused(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(realtime_tolerance_s=1.0)
    session = await MoshiSession.connect(gw.url, opts(gw.new_key()))
    await session.send_pcm(tone(440, 3.0))
    events = [e async for e in session.events()]
    closed = events[-1]
    assert isinstance(closed, ClosedEvent) and closed.code == 1008
    assert closed.reason.startswith("Audio is arriving faster than real time")


async def test_stalled_backend_is_detected(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sim_config=SimConfig(stall_after_frames=3), backend_stall_s=0.5)
    session = await MoshiSession.connect(gw.url, opts(gw.new_key()))
    closed = await asyncio.wait_for(talk_until_closed(session), 10)
    assert closed == ClosedEvent(1011, "The model server stopped answering for 0.5 s.")
    assert gw.ctx.backends.backends[0].healthy is False


async def test_dead_client_releases_the_backend(make_gateway: GatewayFactory) -> None:
    """A client that vanishes without closing (no pong) is dropped by the heartbeat."""
    gw = await make_gateway(ws_heartbeat_s=0.5)
    key = gw.new_key()
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    nonce = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /api/chat?api_key={key} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        await gw.sims[0].wait_until(lambda s: s.sessions_started == 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(gw.sims[0].wait_until(lambda s: s.sessions_finished == 1), 15)
        assert loop.time() - started < 15
        await gw.sessions_done()
    finally:
        sock.close()


async def test_client_that_stops_reading_is_let_go(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(max_client_lag_s=1.0)
    key = gw.new_key()
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = gw.url.removeprefix("http://").split(":")
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (host, int(port)))
    url = gw.ws_url + f"/ws/stream?api_key={key}&format=f32le"
    ws = await websockets.connect(url, sock=raw, compression=None, proxy=None, max_queue=1)
    try:
        while True:
            msg = await asyncio.wait_for(ws.recv(), 5)
            if isinstance(msg, str) and '"ready"' in msg:
                break
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunk = np.zeros(1920, "<f4").tobytes()
        # Keep talking at real-time pace but never read, until the gateway gives up on us.
        for i in range(400):
            if gw.sims[0].stats.sessions_finished:
                break
            await asyncio.sleep(max(0.0, start + i * 0.08 - loop.time()))
            await asyncio.wait_for(ws.send(chunk), 5)
        assert gw.sims[0].stats.sessions_finished == 1, "the backend was released"
        assert loop.time() - start < 20
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1008
        assert (ws.close_reason or "").startswith("The client fell more than 1 s of audio behind")
    finally:
        await ws.close()


async def test_a_thousand_sessions_leak_nothing(gateway: Gateway) -> None:
    key = gateway.new_key(rpm=100_000, max_sessions=5)

    async def cycle() -> None:
        url = gateway.ws_url + f"/api/chat?api_key={key}"
        async with websockets.connect(url, compression=None, proxy=None) as ws:
            assert await ws.recv() == b"\x00"

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    for _ in range(20):
        await cycle()
    await gateway.sessions_done()
    before_fds, before_tasks = fds(), len(asyncio.all_tasks())
    for _ in range(1000):
        await cycle()
    await gateway.sessions_done()
    await gateway.sims[0].wait_until(lambda s: s.sessions_finished == 1020)
    assert len(asyncio.all_tasks()) <= before_tasks
    assert fds() <= before_fds + 5
    assert gateway.ctx.scheduler.waiting() == []
    assert not gateway.ctx.backends.backends[0].busy


async def test_usage_of_ended_sessions_is_logged_as_events(gateway: Gateway) -> None:
    from pplex_desktop.gateway.events import SessionEnded

    seen: list[SessionEnded] = []
    gateway.ctx.events.subscribe(lambda e: seen.append(e) if isinstance(e, SessionEnded) else None)
    async with await MoshiSession.connect(gateway.url, opts(gateway.new_key("ev"))) as session:
        await session.send_pcm(tone(300, 0.4))
        async for event in session.events():
            if isinstance(event, AudioEvent):
                break
    await gateway.sessions_done()
    (ended,) = seen
    assert ended.key_name == "ev" and ended.reason == "client_closed" and ended.audio_in_s > 0


async def test_hanging_up_mid_answer_closes_the_backend_socket_cleanly(
    make_gateway: GatewayFactory,
) -> None:
    """Found against the real Kyutai server (tests/conformance): the gateway dropped the
    backend's socket without a close handshake, so a server still answering frames raised
    ("Cannot write to closing transport"). Here the simulator would log that as an ERROR."""
    gw = await make_gateway(sim_config=SimConfig(flavor="kyutai", frame_delay_s=0.03))
    async with await MoshiSession.connect(gw.url, opts(gw.new_key())) as session:
        for _ in range(8):
            await session.send_frame(np.zeros(FRAME_SAMPLES, np.float32))
        async with asyncio.timeout(10):
            async for event in session.events():
                if isinstance(event, AudioEvent):
                    break  # hang up with six frames still being answered
    sim = gw.sims[0]
    await asyncio.wait_for(sim.wait_until(lambda s: s.sessions_finished == 1), 10)
    assert sim.stats.frames_out == 7, "the backend answered what it had, then saw the close"
