"""MoshiSession on aiohttp's client, against small real servers on loopback: what goes on the
wire (headers, query, close frames), how refusals, timeouts, TLS and broken servers are told."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from pplex_desktop.gateway.lan import tls
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.client import (
    ClosedEvent,
    ConnectError,
    HandshakeError,
    MoshiSession,
    SessionClosedError,
    SessionOptions,
    TextEvent,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES

STEP_S = 5.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    headers: list[dict[str, str]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)


@dataclass
class Server:
    url: str
    seen: Seen


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        seen = Seen()

        async def chat(request: web.Request) -> web.StreamResponse:
            seen.headers.append(dict(request.headers))
            seen.queries.append(dict(request.query))
            response = await handler(request)
            if isinstance(response, web.WebSocketResponse):
                seen.close_codes.append(response.close_code)
            return response

        app = web.Application()
        app.router.add_get("/api/chat", chat)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        return Server(f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{port}", seen)

    yield start
    for runner in runners:
        await runner.cleanup()


async def shake_then_echo_text(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_bytes(proto.encode(proto.Handshake()))
    async for message in ws:
        if message.type is WSMsgType.BINARY:
            await ws.send_bytes(proto.encode(proto.Text(f" got {len(message.data)}")))
    return ws


async def test_key_origin_and_user_agent_go_in_the_headers(serve: ServerFactory) -> None:
    server = await serve(shake_then_echo_text)
    options = SessionOptions(api_key="k-secret", origin="http://talk.example", text_prompt="hi")
    async with await MoshiSession.connect(server.url, options):
        pass
    headers = server.seen.headers[0]
    assert headers["X-API-Key"] == "k-secret"
    assert headers["Origin"] == "http://talk.example"
    assert headers["User-Agent"] == "pplex-desktop"
    assert server.seen.queries[0] == {"text_prompt": "hi"}
    assert server.seen.close_codes == [1000]


async def test_a_client_sends_audio_control_and_pings_only(serve: ServerFactory) -> None:
    received: list[bytes] = []

    async def record(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(proto.encode(proto.Handshake()))
        async for message in ws:
            received.append(message.data)
        return ws

    server = await serve(record)
    async with await MoshiSession.connect(server.url) as session:
        await session.send_message(proto.Control(proto.ControlAction.PAUSE))
        await session.send_message(proto.Ping())
        await session.send_message(proto.Audio(b"OggS"))
        with pytest.raises(TypeError, match="not Text"):
            await session.send_message(proto.Text("a client does not speak text"))
    assert received == [b"\x03\x02", b"\x06", b"\x01OggS"]


async def test_a_key_in_the_query_is_not_also_a_header(serve: ServerFactory) -> None:
    server = await serve(shake_then_echo_text)
    async with await MoshiSession.connect(
        server.url, SessionOptions(api_key="k", key_in_query=True)
    ):
        pass
    assert "X-API-Key" not in server.seen.headers[0]
    assert server.seen.queries[0]["api_key"] == "k"


async def test_proxies_from_the_environment_are_never_used(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = await serve(shake_then_echo_text)
    async with await MoshiSession.connect(server.url):
        pass


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            json.dumps({"error": {"message": "The key is revoked."}}),
            "application/json",
            "HTTP 403: The key is revoked.",
        ),
        ("plain words", "text/plain", "HTTP 403: plain words"),
        ("", "text/plain", "HTTP 403: Forbidden"),
        ("x" * 1_000_000, "text/plain", "HTTP 403: " + "x" * 200),
    ],
)
async def test_a_refusal_is_told_with_its_body(
    serve: ServerFactory, body: str, content_type: str, expected: str
) -> None:
    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=403, text=body, content_type=content_type)

    server = await serve(refuse)
    with pytest.raises(ConnectError) as refused:
        await MoshiSession.connect(server.url, SessionOptions(open_timeout=STEP_S))
    assert refused.value.message == f"The server refused the connection with {expected}"
    assert refused.value.status == 403


async def test_a_server_that_never_answers_the_upgrade_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectError, match="the connection timed out"):
            await MoshiSession.connect(f"ws://127.0.0.1:{port}", SessionOptions(open_timeout=0.3))
    finally:
        for writer in held:
            writer.close()
        tcp.close()
        await tcp.wait_closed()


async def test_an_address_that_cannot_be_one_is_refused_in_words() -> None:
    with pytest.raises(ConnectError, match="is not a valid WebSocket address"):
        await MoshiSession.connect("ws://127.0.0.1:99999")


async def test_a_close_before_the_handshake_names_its_code(serve: ServerFactory) -> None:
    async def go_away(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=1008, message=b"not today")
        return ws

    server = await serve(go_away)
    with pytest.raises(HandshakeError, match=r"close code 1008: not today"):
        await MoshiSession.connect(server.url)


async def test_an_error_message_before_the_handshake_fails_the_connect(
    serve: ServerFactory,
) -> None:
    async def error_first(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(proto.encode(proto.Error("no such voice")))
        async for _ in ws:
            pass
        return ws

    server = await serve(error_first)
    with pytest.raises(HandshakeError, match="The server reported an error: no such voice"):
        await MoshiSession.connect(server.url, SessionOptions(handshake_timeout=STEP_S))
    assert server.seen.close_codes == [1000]


async def test_what_comes_before_the_handshake_is_passed_on_or_skipped(
    serve: ServerFactory,
) -> None:
    async def chatty(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("a text frame is not Moshi")
        await ws.send_bytes(b"\x09junk")
        await ws.send_bytes(b"\x01audio too early")
        await ws.send_bytes(proto.encode(proto.Metadata({"type": "queue", "position": 1})))
        await ws.send_bytes(proto.encode(proto.Handshake()))
        async for _ in ws:
            pass
        return ws

    server = await serve(chatty)
    metadata: list[object] = []
    session = await MoshiSession.connect(
        server.url, SessionOptions(handshake_timeout=STEP_S), on_metadata=metadata.append
    )
    await session.close()
    assert metadata == [{"type": "queue", "position": 1}]


async def test_a_server_initiated_close_is_answered_and_reported(serve: ServerFactory) -> None:
    async def hang_up(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(proto.encode(proto.Handshake()))
        await ws.send_bytes(proto.encode(proto.Text(" bye")))
        await ws.close(code=1011, message=b"model failure")
        return ws

    server = await serve(hang_up)
    session = await MoshiSession.connect(server.url)
    async with asyncio.timeout(STEP_S):
        events = [event async for event in session.events()]
    assert events == [TextEvent(" bye"), ClosedEvent(1011, "model failure")]
    assert session.close_code == 1011
    with pytest.raises(SessionClosedError, match="no more audio can be sent"):
        await session.send_frame(np.zeros(FRAME_SAMPLES, np.float32))
    with pytest.raises(SessionClosedError):
        await session.send_message(proto.Ping())
    await session.close()  # after the end: nothing to do, and no error


async def test_a_message_over_the_limit_ends_the_session_with_1009(
    serve: ServerFactory,
) -> None:
    async def too_big(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(proto.encode(proto.Handshake()))
        with contextlib.suppress(ConnectionError):  # the client hangs up while it arrives
            await ws.send_bytes(b"\x01" + bytes(4 * 1024 * 1024 + 1))
            async for _ in ws:
                pass
        return ws

    server = await serve(too_big)
    session = await MoshiSession.connect(server.url)
    async with asyncio.timeout(STEP_S):
        events = [event async for event in session.events()]
    assert len(events) == 1 and isinstance(events[0], ClosedEvent)
    assert events[0].code == 1009
    await session.close()


async def test_a_dropped_connection_is_connection_lost(serve: ServerFactory) -> None:
    async def drop(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(proto.encode(proto.Handshake()))
        assert request.transport is not None
        request.transport.abort()
        return ws

    server = await serve(drop)
    session = await MoshiSession.connect(server.url)
    async with asyncio.timeout(STEP_S):
        events = [event async for event in session.events()]
    assert events == [ClosedEvent(None, "connection lost")]
    assert session.close_code == 1006


async def tls_server(serve: ServerFactory, folder: Path) -> tuple[Server, ssl.SSLContext]:
    """A wss server with a certificate of the local CA, and a client context trusting it."""
    info = tls.ensure_local_certificates(
        folder, tls.local_names("deskbox", ()), now=dt.datetime.now(dt.UTC)
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(info.cert_path, info.key_path)
    server = await serve(shake_then_echo_text, server_context)
    return server, ssl.create_default_context(cafile=str(folder / tls.CA_CERT))


async def test_wss_with_the_ssl_context_given(serve: ServerFactory, tmp_path: Path) -> None:
    server, trusting = await tls_server(serve, tmp_path)
    session = await MoshiSession.connect(server.url, SessionOptions(ssl_context=trusting))
    await session.send_frame(np.zeros(FRAME_SAMPLES, np.float32))
    async with asyncio.timeout(STEP_S):
        async for event in session.events():
            assert isinstance(event, TextEvent) and event.text.startswith(" got ")
            break
    await session.close()


# The server side logs the handshake the client broke off.
@pytest.mark.expect_error_logs
async def test_wss_with_a_certificate_not_trusted_is_refused(
    serve: ServerFactory, tmp_path: Path
) -> None:
    server, _trusting = await tls_server(serve, tmp_path)
    with pytest.raises(ConnectError, match="the TLS handshake failed"):
        await MoshiSession.connect(server.url, SessionOptions(open_timeout=STEP_S))
