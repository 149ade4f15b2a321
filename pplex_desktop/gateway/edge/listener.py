"""The listening sockets: a hard limit on client sockets, enforced at accept().

The ConnectionGuard decides once aiohttp sees a connection, which for HTTPS is after the TLS
handshake: connections still handshaking (up to ``tls_handshake_timeout_s`` each), and the
ones just turned away that the loop has not closed yet, hold files it does not count. The
gate counts every client socket accepted and not yet closed, and past ``max_sockets`` it
closes newcomers at once (with a 503 sentence on plain HTTP), so accept() itself never fails
for lack of files and asyncio never logs "Too many open files".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from pplex_desktop.gateway.edge.burstlog import BurstLog
from pplex_desktop.gateway.edge.parse_errors import raw_response

LISTEN_QUEUE = 1024  # the kernel caps it at net.core.somaxconn
ACCEPT_BATCH = 128  # asyncio accepts this many per turn of the loop
REFUSE_BATCH = 256  # turned away per accept() call, so one call never runs long
PRUNE_EVERY_S = 0.05
OVERSHOOT = 32  # newcomers let in past the limit while the sockets shut for them close


class _Closable(Protocol):
    def fileno(self) -> int: ...


class AcceptGate:
    """Counts the client sockets the gateway holds open, whatever their state.

    Full, it makes room the way the ConnectionGuard does: the oldest socket aiohttp has not
    seen yet (a TLS handshake that has not finished) is shut down, so a flood of silent
    handshakes cannot lock out the plain site's users. Only when every socket belongs to a
    connection the guard manages is a newcomer turned away.
    """

    def __init__(
        self, max_sockets: int, burst: BurstLog, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_sockets = max_sockets
        self._burst = burst
        self._clock = clock
        self._sockets: dict[int, socket.socket] = {}
        self._unseen: OrderedDict[int, socket.socket] = OrderedDict()  # oldest first
        # Shut down for a newcomer, or closed by the guard, and not yet closed by the loop.
        self._shutting: list[_Closable] = []
        self._pruned_at = -PRUNE_EVERY_S
        self.refused = 0
        self.shut = 0

    @property
    def alive(self) -> int:
        return len(self._sockets)

    def closing(self, sock: _Closable) -> None:
        """The guard closed this one: its file is as good as free, wait for it."""
        if len(self._shutting) >= 4 * OVERSHOOT:  # keep the list short when not full
            self._shutting = [s for s in self._shutting if s.fileno() != -1]
        self._shutting.append(sock)

    def adopt(self, fd: int) -> None:
        """aiohttp has the connection now (after the TLS handshake, for HTTPS)."""
        self._unseen.pop(fd, None)

    def _prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        # Closed sockets report fileno -1; counting them lazily keeps accept cheap.
        self._pruned_at = now
        self._sockets = {fd: s for fd, s in self._sockets.items() if s.fileno() == fd}
        for fd in [fd for fd, s in self._unseen.items() if s.fileno() != fd]:
            del self._unseen[fd]

    def _shut_oldest_unseen(self) -> None:
        _old_fd, victim = self._unseen.popitem(last=False)
        self._shutting.append(victim)
        try:
            address = str(victim.getpeername()[0])
        except (OSError, IndexError, TypeError):
            address = "unknown"
        # Shut down, not closed: the loop still watches it, sees the end and closes it.
        with contextlib.suppress(OSError):
            victim.shutdown(socket.SHUT_RDWR)
        self.shut += 1
        self._burst.event(
            "handshakes",
            address,
            f"The gateway holds {self.max_sockets} client sockets, all its open-file "
            f"limit allows; it closed the oldest one that had not finished its TLS "
            f"handshake, from {address}.",
        )

    def saturated(self) -> bool:
        """Full, with newcomers let in already that wait for their sockets' victims to close:
        leave the next ones in the kernel's queue for a turn of the loop."""
        if len(self._sockets) < self.max_sockets or len(self._shutting) < OVERSHOOT:
            return False
        self._shutting = [s for s in self._shutting if s.fileno() != -1]
        if len(self._shutting) < OVERSHOOT:
            return False
        self._prune()
        return len(self._sockets) >= self.max_sockets

    def allow(self, conn: socket.socket) -> bool:
        fd = conn.fileno()
        self._unseen.pop(fd, None)  # a number reused: its former socket is closed
        self._sockets.pop(fd, None)
        if len(self._sockets) >= self.max_sockets:
            self._prune()
        if len(self._sockets) >= self.max_sockets:
            self._shutting = [s for s in self._shutting if s.fileno() != -1]
            if self._unseen and len(self._shutting) < OVERSHOOT:
                self._shut_oldest_unseen()
            elif not self._shutting:
                self.refused += 1
                return False
        self._sockets[fd] = conn
        self._unseen[fd] = conn
        return True

    def refuse(self, conn: socket.socket, address: str, plain: bool) -> None:
        self._burst.event(
            "sockets",
            address,
            f"The gateway turned away a connection from {address} at accept: it holds "
            f"{self.max_sockets} client sockets, all its open-file limit allows.",
        )
        if plain:
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.send(
                    raw_response(
                        503,
                        "too_many_connections",
                        "The gateway is serving as many connections as it can; try again in "
                        "a few seconds.",
                        retry_after_s=5,
                    )
                )
        conn.close()


class GatedListener(socket.socket):
    """A listening socket whose accept() asks the gate first (asyncio's selector loops call
    ``accept()`` on the very object they were given)."""

    __slots__ = ("_gate", "_plain")
    _gate: AcceptGate
    _plain: bool  # plain HTTP: a refusal can say why; TLS has not even said hello yet

    def accept(self) -> tuple[socket.socket, Any]:
        gate: AcceptGate = self._gate
        for _ in range(REFUSE_BATCH):
            if gate.saturated():
                raise BlockingIOError  # asyncio tries again at the next turn of the loop
            conn, address = super().accept()  # BlockingIOError when none is waiting
            if gate.allow(conn):
                return conn, address
            host = address[0] if isinstance(address, tuple) else "unknown"
            gate.refuse(conn, str(host), self._plain)
        raise BlockingIOError  # more later: asyncio keeps listening


def gated_listeners(host: str, port: int, gate: AcceptGate, plain: bool) -> list[GatedListener]:
    """Bound sockets for ``host:port``, one per address the name stands for, as asyncio's
    create_server would make them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    made: list[GatedListener] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            try:
                sock = GatedListener(family, kind, proto)
            except OSError:
                continue  # an address family this system lacks (IPv6 off), as asyncio does
            made.append(sock)
            sock._gate = gate
            sock._plain = plain
            if os.name == "posix" and sys.platform != "cygwin":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except BaseException:
        for sock in made:
            sock.close()
        raise
    if not made:
        raise OSError(f"No address to listen on was found for {host}.")
    return made


class GatedSite(web.TCPSite):
    """A TCPSite listening through gated sockets, with a TLS handshake timeout (asyncio's
    default is 60 s) and a deeper listen queue than asyncio's batch of accepts."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        gate: AcceptGate,
        handshake_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._gate = gate
        self._handshake_timeout_s = handshake_timeout_s
        self._extra_servers: list[asyncio.Server] = []

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        tls = self._ssl_context
        loop = asyncio.get_running_loop()
        listeners = gated_listeners(self._host or "", self._port, self._gate, tls is None)
        servers: list[asyncio.Server] = []
        try:
            for sock in listeners:
                servers.append(
                    await loop.create_server(
                        server,
                        sock=sock,
                        ssl=tls,
                        backlog=ACCEPT_BATCH,
                        ssl_handshake_timeout=self._handshake_timeout_s if tls else None,
                    )
                )
                # asyncio listens with its batch size; a burst of connections (a slowloris
                # reopening its sockets) must not overflow the kernel's queue and drop the SYN
                # of a real client, which would cost it a second.
                sock.listen(LISTEN_QUEUE)
        except BaseException:
            for made in servers:
                made.close()
            for sock in listeners:
                sock.close()
            raise
        self._server, self._extra_servers = servers[0], servers[1:]
        self._bound_port = listeners[0].getsockname()[1]

    async def stop(self) -> None:
        for extra in self._extra_servers:
            extra.close()
        self._extra_servers = []
        await super().stop()
