"""A TCP pass-through that records both directions, and a parser for the WebSocket frames in it.

Put between the gateway and the real server, it shows what the server sent and what it was sent
on the wire itself, so a test can compare that with what a client saw through the gateway
without trusting any WebSocket library on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
CHUNK = 65536


class FrameError(ValueError):
    """The recorded bytes are not a valid WebSocket stream."""


@dataclass
class TappedConnection:
    """The bytes of one TCP connection, each direction in order."""

    up: bytearray = field(default_factory=bytearray)  # gateway -> server
    down: bytearray = field(default_factory=bytearray)  # server -> gateway
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # both directions ended

    @property
    def request_line(self) -> str:
        return bytes(self.up.split(b"\r\n", 1)[0]).decode("latin-1")


def _after_upgrade(data: bytes | bytearray) -> bytes:
    _head, sep, rest = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        raise FrameError("the HTTP upgrade is incomplete")
    return rest


def messages(data: bytes | bytearray, *, masked: bool) -> list[tuple[int, bytes]]:
    """The data messages (opcode, payload) after the upgrade; control frames other than close
    are left out, fragments are joined. ``masked``: frames from a client (RFC 6455 5.3)."""
    body = _after_upgrade(data)
    out: list[tuple[int, bytes]] = []
    pos = 0
    partial: tuple[int, bytearray] | None = None
    while pos + 2 <= len(body):
        b0, b1 = body[pos], body[pos + 1]
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        if rsv:
            raise FrameError("a frame uses an extension (compression was negotiated)")
        if bool(b1 & 0x80) != masked:
            raise FrameError("a frame's mask bit is wrong for its direction")
        length, pos = b1 & 0x7F, pos + 2
        if length == 126:
            (length,) = struct.unpack_from("!H", body, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", body, pos)
            pos += 8
        key = body[pos : pos + 4] if masked else b""
        pos += len(key)
        if pos + length > len(body):
            break  # the connection was cut inside a frame: keep what was whole
        payload = body[pos : pos + length]
        pos += length
        if masked:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        if opcode == OP_CLOSE:
            out.append((OP_CLOSE, payload))
        elif opcode in (OP_TEXT, OP_BINARY):
            if fin:
                out.append((opcode, payload))
            else:
                partial = (opcode, bytearray(payload))
        elif opcode == OP_CONTINUATION and partial is not None:
            partial[1].extend(payload)
            if fin:
                out.append((partial[0], bytes(partial[1])))
                partial = None
    return out


def binary(data: bytes | bytearray, *, masked: bool) -> list[bytes]:
    return [p for op, p in messages(data, masked=masked) if op == OP_BINARY]


class WireTap:
    """Listens on a free port and forwards every connection to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.connections: list[TappedConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Stop listening and cut what is still connected (idle health-check connections)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        # Closing the sockets ends every pump; cancelling the handlers instead would make
        # asyncio log an error for each (Python 3.11's start_server callback).
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    def chats(self) -> list[TappedConnection]:
        """The /api/chat connections (health checks are plain HTTP GETs of /)."""
        return [c for c in self.connections if c.request_line.startswith("GET /api/chat")]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        record = TappedConnection()
        self.connections.append(record)
        writers = [writer]
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
            writers.append(up_writer)
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pump(reader, up_writer, record.up),
                self._pump(up_reader, writer, record.down),
            )
        except OSError:
            pass  # the server is gone: the client sees its connection end
        finally:
            for w in writers:
                w.close()
                self._writers.discard(w)
            record.finished.set()
            self._tasks.discard(task)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, into: bytearray
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                into.extend(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
