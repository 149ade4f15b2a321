"""HTTP/1.1 by hand on raw loopback sockets: requests no client library would send.

The hostile tests send bytes clients need not percent-encode, broken request lines, headers a
library refuses to write, and connections that never finish; the gateway tests send wrong
admin secrets in every shape. One parser reads every answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers (names in lower case) of an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of a whole answer read until the connection closed."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, body


def raw_exchange(host: str, port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the gateway closes it."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(data)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise AssertionError(f"the gateway kept the connection open past {timeout_s} s")
        return b"".join(chunks)


async def raw_request(
    host: str, port: int, request: bytes, wait_s: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` byte for byte and read the status, headers and body of the answer
    (its Content-Length worth; the connection may stay open, as after a 101)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(wait_s):
            status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if status != 101 else b""
            return status, headers, body
    finally:
        writer.close()


async def http_get(
    host: str, port: int, path: str, headers: dict[str, str] | None = None, limit_s: float = 5.0
) -> tuple[int, bytes, float]:
    """One GET on a fresh connection, read until it closes: (status, body, seconds it took)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    async with asyncio.timeout(limit_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    status, _headers, body = split_response(raw)
    return status, body, loop.time() - start


def upgrade_request(target: str, *, upgrade: bool = True, **headers: str) -> bytes:
    """A GET of ``target`` (path and query, sent as given), a WebSocket upgrade by default."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
    if upgrade:
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
