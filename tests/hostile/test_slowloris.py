"""Slowloris without a key: connections that never finish their request must not lock out
the gateway's own users, and the gateway closes them itself.

Found: 1,100 such connections against a gateway limited to 1,024 open files stopped
``/healthz`` for the whole hold, asyncio logged 81,453 "Too many open files" lines, and the
connections were still open after 240 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.edge import connections
from pplex_desktop.gateway.edge.connections import (
    ConnectionGuard,
    ConnectionLimits,
    derived_cap,
    readable,
)
from pplex_desktop.gateway.edge.protocol import GuardedHandler
from tests.gateway.conftest import Gateway, GatewayFactory, gateway, make_gateway
from tests.hostile.edge_support import (
    DESKTOP_FILE_LIMIT,
    GatewayProcess,
    assert_no_secret,
    raised_file_limit,
    start_gateway_process,
)
from tests.hostile.store_support import ADMIN_SECRET
from tests.raw_http import host_port, http_get, split_response

__all__ = ["gateway", "make_gateway"]  # the gateway tier's fixtures, used here too

ATTACK_CONNECTIONS = 1100
PARTIAL = b"GET /v1/info?pad="  # a request line that never ends
TRICKLE_S = 2.0
# A gateway the attack had blocked would answer only once held connections time out, after the
# shortest timeout an attack here holds them for (3 s): anything well under it is served.
ANSWER_WITHIN_S = 2.0
DEFAULT_HEADER_TIMEOUT_S = 10.0  # like nginx's client_header_timeout, shorter than its 60 s


@dataclass
class Slowloris:
    """Holds ``count`` connections, each sending a byte every TRICKLE_S, reopening the ones the
    gateway closed at every round, as slowloris does."""

    host: str
    port: int
    count: int
    reopen: bool = True
    lifetimes: list[float] = field(default_factory=list)  # connect until the gateway closed it
    opened: int = 0
    failed_connects: int = 0
    most_held: int = 0
    _open: dict[socket.socket, float] = field(default_factory=dict)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(5):
                await loop.sock_connect(sock, (self.host, self.port))
            sock.send(PARTIAL)
        except (OSError, TimeoutError):
            self.failed_connects += 1
            sock.close()
            return
        self.opened += 1
        self._open[sock] = loop.time()

    def _reap(self) -> None:
        """Note the connections the gateway has closed (EOF, an answer, or a reset)."""
        now = asyncio.get_running_loop().time()
        for sock, since in list(self._open.items()):
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                # A 408 sentence comes before the close; nothing else may.
                assert data.startswith(b"HTTP/1.1 408"), data[:80]
                assert b'"error"' in data
                with contextlib.suppress(BlockingIOError, OSError):
                    if sock.recv(4096):
                        continue
            self.lifetimes.append(now - since)
            del self._open[sock]
            sock.close()

    async def _fill(self) -> None:
        missing = self.count - len(self._open)
        for start in range(0, missing, 100):
            await asyncio.gather(*(self._connect() for _ in range(min(100, missing - start))))
        self.most_held = max(self.most_held, len(self._open))

    async def hold(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        await self._fill()
        for _ in range(int(seconds / TRICKLE_S) + 1):
            if loop.time() >= end:
                break
            await asyncio.sleep(min(TRICKLE_S, max(0.0, end - loop.time())))
            self._reap()
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.send(b"A")
            if self.reopen:
                await self._fill()

    async def until_all_closed(self, limit_s: float) -> float:
        """Keep trickling on what is left until the gateway has closed every connection."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(int(limit_s / 0.25) + 1):
            self._reap()
            if not self._open:
                return loop.time() - start
            await asyncio.sleep(0.25)
        raise AssertionError(f"{len(self._open)} partial connections were still open")

    def close(self) -> None:
        for sock in self._open:
            sock.close()
        self._open.clear()


def _probe(gw: GatewayProcess, stop: threading.Event, times: list[float]) -> None:
    """The gateway's own users: /healthz and an authenticated /v1/info, on new connections.

    They run on a thread with a loop of their own: on the test's loop the attacker's 1,100
    sockets would delay the probes' own callbacks, and a loaded machine would then be measured
    instead of the gateway."""

    async def probe() -> None:
        host, port = gw.address
        for _ in range(200):
            if stop.is_set():
                return
            for path, headers in (("/healthz", {}), ("/v1/info", {"X-API-Key": gw.key})):
                status, body, took = await http_get(host, port, path, headers, limit_s=5)
                assert status == 200, (path, status, body[:200])
                times.append(took)
            await asyncio.sleep(0.5)  # a user's pace, not a flood of our own

    asyncio.run(probe())


async def _attack(
    gw: GatewayProcess, hold_s: float, drain_limit_s: float, reopen: bool
) -> dict[str, float]:
    host, port = gw.address
    attacker = Slowloris(host, port, ATTACK_CONNECTIONS, reopen=reopen)
    stop = threading.Event()
    times: list[float] = []
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        holding = asyncio.create_task(attacker.hold(hold_s))
        await asyncio.sleep(0.5)  # the first wave is in
        probing = asyncio.create_task(asyncio.to_thread(_probe, gw, stop, times))
        await holding
        stop.set()
        await probing
        drained = await attacker.until_all_closed(drain_limit_s)
        total = loop.time() - started
    finally:
        attacker.close()
    assert times, "the probes ran"
    assert max(times) < ANSWER_WITHIN_S, f"slowest answer {max(times):.2f} s"
    return {
        "opened": attacker.opened,
        "most_held": attacker.most_held,
        "failed_connects": attacker.failed_connects,
        "slowest_answer_s": max(times),
        "probes": len(times),
        "longest_partial_s": max(attacker.lifetimes),
        "drain_s": drained,
        "total_s": total,
    }


def _check_log(gw: GatewayProcess) -> str:
    text = gw.log_text()
    assert "Too many open files" not in text
    assert "out of system resource" not in text
    assert "Traceback" not in text
    assert len(text) < 20_000, f"the gateway logged {len(text)} bytes"
    assert_no_secret([text], gw.key, ADMIN_SECRET)
    return text


@pytest.mark.timeout(90)
async def test_slowloris_with_the_default_limits(tmp_path: Path) -> None:
    """The default 10 s header timeout and 64 waiting connections per address."""
    with raised_file_limit(ATTACK_CONNECTIONS + 256):
        gw = await asyncio.to_thread(start_gateway_process, tmp_path / "data", {"demo": True})
        try:
            header_timeout = DEFAULT_HEADER_TIMEOUT_S
            figures = await _attack(gw, header_timeout + 2, header_timeout + 5, reopen=True)
        finally:
            await asyncio.to_thread(gw.stop)  # it waits for the process: off the loop
    print("slowloris, default limits:", json.dumps(figures))
    assert figures["most_held"] >= ATTACK_CONNECTIONS * 0.9
    assert figures["longest_partial_s"] <= header_timeout + 3  # well within 30 s
    text = _check_log(gw)
    assert "did not complete its request headers within 10 s" in text
    assert Settings().header_timeout_s == DEFAULT_HEADER_TIMEOUT_S


@pytest.mark.timeout(90)
async def test_slowloris_past_the_connection_limit(tmp_path: Path) -> None:
    """Without the per-address limit, the limit derived from 1,024 open files holds alone."""
    with raised_file_limit(ATTACK_CONNECTIONS + 256):
        settings: dict[str, object] = {
            "demo": True,
            "header_timeout_s": 3.0,
            "max_waiting_per_address": 5000,
        }
        gw = await asyncio.to_thread(start_gateway_process, tmp_path / "data", settings)
        try:
            figures = await _attack(gw, 5.0, 8.0, reopen=False)
        finally:
            await asyncio.to_thread(gw.stop)  # it waits for the process: off the loop
    print("slowloris, connection limit:", json.dumps(figures))
    assert figures["longest_partial_s"] <= 3.0 + 3
    text = _check_log(gw)
    assert f"connection limit ({derived_cap(DESKTOP_FILE_LIMIT)} in all" in text
    assert text.count("closed the oldest connection") <= 3, "one line per burst"


def test_the_limit_leaves_room_below_the_file_limit() -> None:
    assert derived_cap(1024) == 512
    assert derived_cap(4096) == 2816
    assert derived_cap(100) == 16
    assert derived_cap(1 << 20) == 16_384
    limits = ConnectionLimits.from_settings(Settings(max_connections=5000), open_files=1024)
    assert limits.max_connections == 512 and limits.clamped_from == 5000


class _Conn:
    def __init__(self, address: str) -> None:
        self._address = address
        self._evicted = False
        self.unread = False

    @property
    def address(self) -> str:
        return self._address

    def evict(self) -> None:
        self._evicted = True

    def evicted(self) -> bool:
        return self._evicted

    def has_unread_bytes(self) -> bool:
        return self.unread


def _guard(
    max_connections: int, max_waiting_per_address: int
) -> tuple[ConnectionGuard, list[float]]:
    """A guard with these limits, on a clock the test sets: ``now[0]``."""
    now = [0.0]
    settings = Settings(
        max_connections=max_connections, max_waiting_per_address=max_waiting_per_address
    )
    limits = ConnectionLimits.from_settings(settings, open_files=1024)
    return ConnectionGuard(limits, clock=lambda: now[0]), now


def test_a_burst_cannot_push_out_a_newcomer_but_old_waiters_give_way() -> None:
    guard, now = _guard(max_connections=10, max_waiting_per_address=3)
    first = [_Conn("127.0.0.1") for _ in range(5)]
    assert all(guard.admit(c) for c in first)
    assert not any(c.evicted() for c in first), "younger than a second: over the soft limit"
    now[0] = 2.0
    newcomer = _Conn("127.0.0.1")
    assert guard.admit(newcomer)
    assert first[0].evicted() and not first[1].evicted()
    busy = [_Conn("192.0.2.7") for _ in range(5)]
    for c in busy:
        assert guard.admit(c)
        guard.busy(c)
    assert guard.open_count == 10
    # Full: the oldest waiting connection, wherever it comes from, makes room.
    other = _Conn("192.0.2.8")
    assert guard.admit(other)
    assert first[1].evicted()
    for c in (*first[2:], newcomer, other):
        guard.busy(c)
    assert guard.waiting_count == 0
    assert not guard.admit(_Conn("192.0.2.9")), "all busy: the newcomer is refused"
    assert guard.refused == 1
    guard.waiting(busy[0])
    assert guard.admit(_Conn("192.0.2.9")) and busy[0].evicted()


def test_connections_with_unread_bytes_are_not_taken_for_idle() -> None:
    guard, now = _guard(max_connections=12, max_waiting_per_address=3)
    sent = [_Conn("127.0.0.1") for _ in range(5)]
    for c in sent[:3]:
        assert guard.admit(c)
        c.unread = True  # their requests wait in the kernel for a loop that runs late
    now[0] = 2.0
    assert guard.admit(sent[3])
    assert not any(c.evicted() for c in sent), "the per-address rule takes idle ones only"
    sent[3].unread = True
    sent[1].unread = False
    assert guard.admit(sent[4])
    assert [c.evicted() for c in sent] == [False, True, False, False, False]
    sent[4].unread = True
    others = [_Conn(f"192.0.2.{n}") for n in range(8)]
    for c in others:
        assert guard.admit(c)
        c.unread = True
    assert guard.open_count == 12
    # Full, and the oldest few all have requests coming: the hard limit takes the oldest.
    assert guard.admit(_Conn("198.51.100.1"))
    assert sent[0].evicted()
    others[0].unread = False
    assert guard.admit(_Conn("198.51.100.2"))
    assert others[0].evicted() and not sent[2].evicted(), "an idle one among the oldest few"
    others[7].unread = False
    assert guard.admit(_Conn("198.51.100.3"))
    assert sent[2].evicted() and not others[7].evicted(), "past the few it looks at"


def test_readable_sees_unread_bytes_on_any_descriptor() -> None:
    with raised_file_limit(1600):
        left, right = socket.socketpair()
        high = os.dup2(left.fileno(), 1500)  # past select()'s FD_SETSIZE
        try:
            assert not readable(left.fileno()) and not readable(high)
            right.sendall(b"GET / HTTP/1.1\r\n")
            assert readable(left.fileno()) and readable(high)
            left.recv(100)
            assert not readable(high)
            right.close()
            assert readable(high), "the end of the stream is unread too"
            assert not readable(-1)
        finally:
            os.close(high)
            left.close()
            right.close()


async def test_a_request_the_loop_has_not_read_yet_is_not_dropped(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found: 130 uploads from one script, on a loaded machine, and the per-address rule reset
    # connections whose request the loop had not read yet.
    monkeypatch.setattr(connections, "MIN_WAIT_S", 0.0)
    gw = await make_gateway(max_waiting_per_address=1)
    guard = gw.runner.guard
    assert guard is not None
    reader, writer = await _raw(gw)
    await _until(guard, lambda: guard.open_count == 1)
    (first,) = guard.held
    assert isinstance(first, GuardedHandler) and first.transport is not None
    first.transport.pause_reading()  # what a loop that runs late does to a request
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert first.has_unread_bytes()
    _r2, w2 = await _raw(gw)
    try:
        await _until(guard, lambda: guard.open_count + guard.evicted == 2)
        assert guard.evicted == 0
        first.transport.resume_reading()
        status, body = await _read_answer(reader, 3)
    finally:
        writer.close()
        w2.close()
    assert status == 200 and body["status"] == "ok"


async def _raw(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*host_port(gw.url))


async def _read_answer(reader: asyncio.StreamReader, limit_s: float) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(limit_s):
        raw = await reader.read()
    status, _headers, body = split_response(raw)
    return status, json.loads(body)


async def test_a_slow_body_is_answered_408(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(body_timeout_s=1.0, body_min_bytes_per_s=500)
    key = gw.new_key()
    reader, writer = await _raw(gw)
    boundary = "b0undary"
    writer.write(
        (
            f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Content-Length: 100000\r\n\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\nRIFF"
        ).encode()
    )
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def trickle() -> None:
        for _ in range(40):  # a byte every 0.2 s: alive, but far below 500 bytes a second
            await asyncio.sleep(0.2)
            with contextlib.suppress(ConnectionError):
                writer.write(b"\0")

    dribbling = asyncio.create_task(trickle())
    try:
        status, body = await _read_answer(reader, 6)
    finally:
        dribbling.cancel()
        writer.close()
    assert status == 408
    assert body["error"] == {
        "code": "request_timeout",
        "message": "The request body arrived too slowly: the gateway waits at most 1 s for "
        "each part of it and needs at least 500 bytes a second on average.",
    }
    assert loop.time() - start < 4


async def test_a_body_that_stops_is_answered_408(make_gateway: GatewayFactory) -> None:
    """Content-Length promises more than comes: the upload no longer hangs until the client
    leaves (it did for 70 s)."""
    gw = await make_gateway(body_timeout_s=1.0)
    key = gw.new_key()
    reader, writer = await _raw(gw)
    writer.write(
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
        "Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 5000\r\n\r\n--zz\r\n".encode()
    )
    try:
        status, body = await _read_answer(reader, 5)
    finally:
        writer.close()
    assert status == 408
    assert body["error"]["code"] == "request_timeout"


async def test_partial_headers_are_answered_408_and_closed(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(header_timeout_s=0.5)
    reader, writer = await _raw(gw)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        status, body = await _read_answer(reader, 3)
    finally:
        writer.close()
    assert status == 408
    assert body["error"] == {
        "code": "request_timeout",
        "message": "The request line and headers did not arrive within 0.5 s.",
    }
    assert loop.time() - start < 2
    guard = gw.runner.guard
    assert guard is not None
    await _until(guard, lambda: guard.open_count == 0)


async def test_keep_alive_requests_each_get_the_header_timeout(
    make_gateway: GatewayFactory,
) -> None:
    """A second request on a kept-alive connection starts its own header clock."""
    gw = await make_gateway(header_timeout_s=0.5, keepalive_timeout_s=5.0)
    reader, writer = await _raw(gw)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(3):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        await asyncio.sleep(1.0)  # idle past the header timeout: keep-alive allows it
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:")
        status, _body = await _read_answer(reader, 3)
    finally:
        writer.close()
    assert status == 408


async def test_when_every_connection_is_busy_newcomers_get_503(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(max_connections=2, body_timeout_s=30.0, body_min_bytes_per_s=0)
    key = gw.new_key()
    held = []
    for _ in range(2):
        reader, writer = await _raw(gw)
        writer.write(
            f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
            "Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 5000\r\n\r\n".encode()
        )
        held.append((reader, writer))
    guard = gw.runner.guard
    assert guard is not None
    await _until(guard, lambda: guard.open_count == 2 and guard.waiting_count == 0)
    reader, writer = await _raw(gw)
    try:
        raw = await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()
    got, headers, body = split_response(raw)
    assert got == 503
    assert headers["retry-after"] == "5"
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    for _reader, w in held:
        w.close()
    await _until(guard, lambda: guard.open_count == 0)
    ok, _body, _took = await http_get(*host_port(gw.url), "/healthz", limit_s=3)
    assert ok == 200


# In debug mode (the test run's), asyncio logs each handshake it aborts at ERROR; a gateway in
# production does not.
@pytest.mark.expect_error_logs
async def test_tls_handshake_and_headers_time_out(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        serve_lan=True,
        lan_host="127.0.0.1",
        lan_port=0,
        tls_handshake_timeout_s=0.5,
        header_timeout_s=0.5,
    )
    lan = gw.runner.lan_address
    assert lan is not None
    loop = asyncio.get_running_loop()
    # No ClientHello at all: asyncio gives up on the handshake.
    reader, writer = await asyncio.open_connection(lan.host, lan.port)
    start = loop.time()
    try:
        async with asyncio.timeout(3):
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
    finally:
        writer.close()
    assert loop.time() - start < 2
    # A finished handshake and then silence: the header timeout applies as on plain HTTP.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(lan.host, lan.port, ssl=context)
    start = loop.time()
    try:
        async with asyncio.timeout(3):
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                assert await reader.read() == b""
    finally:
        writer.close()
    assert loop.time() - start < 2


async def _until(
    guard: ConnectionGuard, predicate: Callable[[], bool], limit_s: float = 5.0
) -> None:
    changed = asyncio.Event()
    guard.add_listener(changed.set)
    try:
        async with asyncio.timeout(limit_s):
            while not predicate():
                await changed.wait()
                changed.clear()
    finally:
        guard.remove_listener(changed.set)


@pytest.mark.timeout(60)
async def test_tls_handshakes_cannot_exhaust_the_open_files(tmp_path: Path) -> None:
    """Connections that never say hello are invisible to aiohttp until their handshake ends;
    the gate at accept() counts them, so a flood of them leaves files for the gateway's users.
    Here the gateway may open 256 files: 192 client sockets, 16 connections held."""
    flood = 600
    with raised_file_limit(flood + 256):
        gw = await asyncio.to_thread(
            functools.partial(
                start_gateway_process,
                tmp_path / "data",
                {"demo": True, "tls_handshake_timeout_s": 3.0},
                file_limit=256,
                extra_args=("--tls", "auto", "--lan-port", "0"),
            )
        )
        held: list[socket.socket] = []
        try:
            assert gw.lan_url is not None
            lan = host_port(gw.lan_url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(flood):
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    await loop.sock_connect(sock, lan)
                held.append(sock)
            # The plain site, in the same process, still answers.
            host, port = gw.address
            times = []
            for _ in range(5):
                status, _body, took = await http_get(host, port, "/healthz", limit_s=5)
                assert status == 200
                times.append(took)
            assert max(times) < ANSWER_WITHIN_S
            print(f"TLS flood: {flood} silent handshakes, slowest /healthz {max(times):.3f} s")
            # Every silent handshake is closed: at once past the limit, else at its timeout.
            for sock in held:
                async with asyncio.timeout(max(0.1, started + 7 - loop.time())):
                    with contextlib.suppress(ConnectionError):
                        assert await loop.sock_recv(sock, 100) == b""
        finally:
            for sock in held:
                sock.close()
            await asyncio.to_thread(gw.stop)  # it waits for the process: off the loop
    text = _check_log(gw)
    assert "holds 192 client sockets, all its open-file limit allows; it closed the old" in text
    assert text.count("TLS handshake") <= 3, "one line per burst"
