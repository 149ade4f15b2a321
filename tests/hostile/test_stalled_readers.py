"""Clients that stop reading: when their session ends, the gateway lets go of the socket.

Found: the session ended (``slow_client``) and the backend was released, but the connection
stayed established for as long as the client liked (seen for 150 s): ``ws.close()`` timed out
on the full send buffer, aiohttp then closed the transport, which waits for the buffer to
drain, and nothing aborted it. One open file per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import numpy as np
import psutil
import pytest
import websockets

from pplex_desktop.gateway.live import relay
from pplex_desktop.gateway.live.relay import CLOSE_GRACE_S
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from tests.gateway.conftest import Gateway, GatewayFactory, gateway, make_gateway
from tests.hostile.edge_support import assert_no_secret, gateway_log
from tests.raw_http import host_port
from tests.signals import tone

__all__ = ["gateway", "make_gateway"]  # the gateway tier's fixtures, used here too

CLOSE_GRACE = 2.0  # the gateway's default close_grace_s (a constant here, so the test runs on
# code without the setting too, and fails there for what it tests)
MARGIN_S = 3.0


def _server_side_open(gw: Gateway, client: tuple[str, int]) -> bool:
    """Is the gateway's end of this client's connection still open (in this process)?"""
    port = host_port(gw.url)[1]
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.raddr and tuple(conn.raddr) == client:
            return conn.status not in (psutil.CONN_CLOSE, psutil.CONN_TIME_WAIT)
    return False


async def _stalled_socket(gw: Gateway) -> socket.socket:
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, host_port(gw.url))
    return raw


async def _until_released(gw: Gateway, client: tuple[str, int], limit_s: float) -> float:
    """Seconds until the gateway has closed its end, after the session ended."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(int(limit_s / 0.1) + 1):
        if not _server_side_open(gw, client):
            return loop.time() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway still held the connection {limit_s:g} s after the end")


async def _send_until_ended(
    gw: Gateway, ws: websockets.ClientConnection, frame: Callable[[], bytes]
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(500):  # at most 40 s of audio at real-time pace
        if gw.sims[0].stats.sessions_finished:
            return
        await asyncio.sleep(max(0.0, start + i * 0.08 - loop.time()))
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            await asyncio.wait_for(ws.send(frame()), 5)
    raise AssertionError("the gateway never gave up on a client that does not read")


@pytest.mark.timeout(60)
async def test_ws_stream_client_that_stops_reading_loses_its_socket(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await make_gateway(max_client_lag_s=1.0)
    key = gw.new_key()
    raw = await _stalled_socket(gw)
    client = raw.getsockname()[:2]
    url = gw.ws_url + f"/ws/stream?api_key={key}&format=f32le"
    ws = await websockets.connect(url, sock=raw, compression=None, proxy=None, max_queue=1)
    try:
        for _ in range(50):
            msg = await asyncio.wait_for(ws.recv(), 5)
            if isinstance(msg, str) and '"ready"' in msg:
                break
        chunk = (0.3 * tone(440, 0.08)).astype("<f4").tobytes()
        await _send_until_ended(gw, ws, lambda: chunk)
        took = await _until_released(gw, client, CLOSE_GRACE_S + CLOSE_GRACE + MARGIN_S + 2)
    finally:
        ws.transport.abort()
    print(f"/ws/stream: the gateway let go {took:.1f} s after the session ended")
    await gw.sessions_done()
    assert_no_secret(gateway_log(caplog.records), key)
    guard = gw.runner.guard
    assert guard is not None and guard.open_count == 0


@pytest.mark.timeout(60)
async def test_api_chat_client_that_stops_reading_loses_its_socket(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    """The session ends by its length limit while the client's socket is full (Opus echoes
    are small: with 4 KB socket and write buffers 8 s of them fill it, where the usual 32 KB
    take 40 s)."""
    monkeypatch.setattr(relay, "SEND_BUFFER_BYTES", 4096)
    monkeypatch.setattr(relay, "DIRECT_SEND_LIMIT", 4096)
    gw = await make_gateway(max_session_s=8.0, max_client_lag_s=60.0)
    key = gw.new_key()
    raw = await _stalled_socket(gw)
    client = raw.getsockname()[:2]
    url = gw.ws_url + f"/api/chat?api_key={key}&text_prompt=Hi&voice_prompt=NATF1"
    ws = await websockets.connect(url, sock=raw, compression=None, proxy=None, max_queue=1)
    try:
        await asyncio.wait_for(ws.recv(), 10)  # the handshake
        encoder = OpusEncoder()
        rng = np.random.default_rng(3)

        def frame() -> bytes:
            # Noise: Opus spends its most bytes on it, so the socket fills soonest.
            pcm = rng.uniform(-0.5, 0.5, FRAME_SAMPLES).astype(np.float32)
            return proto.encode(proto.Audio(encoder.encode(pcm)))

        await _send_until_ended(gw, ws, frame)
        took = await _until_released(gw, client, CLOSE_GRACE_S + CLOSE_GRACE + MARGIN_S + 2)
    finally:
        ws.transport.abort()
    print(f"/api/chat: the gateway let go {took:.1f} s after the session ended")
    await gw.sessions_done()
    assert_no_secret(gateway_log(caplog.records), key)
