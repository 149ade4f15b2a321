"""How many connections the gateway holds, and which one gives way when it is full.

A desktop process usually may open 1,024 files. Unbounded, 1,100 idle connections used them
all: accept() failed (and asyncio logged it) for every newcomer, ``/healthz`` included. So:

* at most ``max_sockets`` client sockets are open at all, whatever their state: the
  open-file limit less a quarter of it (at least 64) for what else the gateway opens (SQLite,
  spool files, model-server sockets). listener.AcceptGate enforces it at accept(), TLS
  handshakes and closing sockets included, so accept() never fails for lack of files;
* the guard holds at most ``max_connections``: that less two batches of accepts (asyncio
  accepts up to 128 connections at a time before the guard sees any of them, and the ones it
  turns away hold a file until the next turn of the loop). 1,024 files thus allow 768
  sockets and 512 connections (nginx's default ``worker_connections``);
* a connection *waiting* (no request in flight: not yet a complete request line and headers,
  or idle between keep-alive requests) is cheap to drop, one serving a request is not. When
  the gateway is full, or one address holds ``max_waiting_per_address`` waiting connections,
  the oldest waiting one gives way to the newcomer, like nginx reusing idle connections. A
  slowloris on 127.0.0.1 thus keeps only its newest few connections, while the desktop app,
  on the same address, gets in and is answered at once: its request arrives in the same
  millisecond as its connection. The per-address rule only takes connections that have
  waited ``MIN_WAIT_S`` already, so a burst of connections cannot push out a newcomer before
  it had the time to send its request; the global limit is the hard one. Connections busy with
  a request are never dropped; only when every held connection is busy is a newcomer refused,
  with a 503 sentence;
* "waiting" is what the gateway has read, and a loop that runs late has not read everything
  the kernel holds: 130 uploads from one script, accepted in one burst, sent their requests at
  once, yet a busy loop took over a second to read them, and the per-address rule reset
  clients whose request had arrived. A connection whose socket has unread bytes is therefore
  not taken by the per-address rule, and the global rule takes it only when none of the oldest
  few waiting connections is idle.
"""

from __future__ import annotations

import select
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pplex_desktop.core.settings import Settings

RESERVE_MIN = 64
ACCEPT_BURST = 2 * 128  # two accept batches of aiohttp's listen backlog
CAP_MAX = 16_384  # past this, memory, not files, is what runs out
UNLIMITED_FILES_CAP = 4096
MIN_WAIT_S = 1.0
IDLE_SCAN = 8  # how many of the oldest waiting connections a newcomer looks at for an idle one


class Guarded(Protocol):
    @property
    def address(self) -> str: ...

    def evict(self) -> None: ...

    def has_unread_bytes(self) -> bool: ...


def readable(fd: int) -> bool:
    """Whether the kernel holds bytes (or the end of the stream) not yet read from ``fd``."""
    if fd < 0:
        return False
    if sys.platform == "win32":  # no poll(); Windows' select() takes any socket handle
        ready, _, _ = select.select([fd], [], [], 0)
        return bool(ready)
    # poll, not select: select() cannot take descriptors past FD_SETSIZE (1,024), and a
    # gateway with a raised file limit has them.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def open_file_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None where there is none (Windows) or it is unlimited."""
    try:
        import resource
    except ImportError:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def socket_cap(open_files: int | None) -> int:
    """How many client sockets may be open at all (listener.AcceptGate enforces it)."""
    if open_files is None:
        return UNLIMITED_FILES_CAP + ACCEPT_BURST
    return max(32, min(open_files - max(RESERVE_MIN, open_files // 4), CAP_MAX + ACCEPT_BURST))


def derived_cap(open_files: int | None) -> int:
    """How many connections the guard holds: the socket limit less two batches of accepts."""
    return max(16, socket_cap(open_files) - ACCEPT_BURST)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float
    body_timeout_s: float
    body_min_bytes_per_s: float
    keepalive_timeout_s: float
    tls_handshake_timeout_s: float
    close_grace_s: float
    max_connections: int
    max_waiting_per_address: int
    max_sockets: int
    clamped_from: int | None = None  # the configured cap, when the file limit lowered it

    @classmethod
    def from_settings(cls, settings: Settings, open_files: int | None = None) -> ConnectionLimits:
        files = open_files if open_files is not None else open_file_limit()
        cap = derived_cap(files)
        wanted = settings.max_connections
        clamped = wanted if wanted > cap else None
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            body_min_bytes_per_s=settings.body_min_bytes_per_s,
            keepalive_timeout_s=settings.keepalive_timeout_s,
            tls_handshake_timeout_s=settings.tls_handshake_timeout_s,
            close_grace_s=settings.close_grace_s,
            max_connections=min(wanted, cap) if wanted > 0 else cap,
            max_waiting_per_address=settings.max_waiting_per_address,
            max_sockets=socket_cap(files),
            clamped_from=clamped,
        )


class ConnectionGuard:
    """The registry of open connections; admits, evicts and counts them."""

    def __init__(
        self, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._open: set[Guarded] = set()
        # Connections without a request in flight, oldest first, with the time they began to.
        self._waiting: OrderedDict[Guarded, float] = OrderedDict()
        self._waiting_at: dict[str, OrderedDict[Guarded, float]] = {}
        self.evicted = 0
        self.refused = 0
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` after every change of the counts (for tests and the activity view)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.remove(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def held(self) -> frozenset[Guarded]:
        return frozenset(self._open)

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    def admit(self, conn: Guarded) -> bool:
        """Make room for ``conn`` and count it; False when every held connection is busy."""
        mine = self._waiting_at.get(conn.address)
        if mine is not None and len(mine) >= self.limits.max_waiting_per_address:
            idle = self._oldest_idle(mine, waited_since=self._clock() - MIN_WAIT_S)
            if idle is not None:
                self._evict(idle)
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self.refused += 1
                return False
            self._evict(self._oldest_idle(self._waiting) or next(iter(self._waiting)))
        self._open.add(conn)
        self.waiting(conn)
        return True

    @staticmethod
    def _oldest_idle(
        waiting: OrderedDict[Guarded, float], waited_since: float | None = None
    ) -> Guarded | None:
        """The oldest of the first IDLE_SCAN ``waiting`` connections with nothing unread."""
        for n, (conn, since) in enumerate(waiting.items()):
            if n >= IDLE_SCAN or (waited_since is not None and since > waited_since):
                return None
            if not conn.has_unread_bytes():
                return conn
        return None

    def _evict(self, conn: Guarded) -> None:
        self.forget(conn)
        self.evicted += 1
        conn.evict()

    def waiting(self, conn: Guarded) -> None:
        """``conn`` has no request in flight: it may give way to a newcomer."""
        if conn not in self._open:
            return
        now = self._clock()
        self._waiting.pop(conn, None)
        self._waiting[conn] = now
        mine = self._waiting_at.setdefault(conn.address, OrderedDict())
        mine.pop(conn, None)
        mine[conn] = now
        self._changed()

    def busy(self, conn: Guarded) -> None:
        """``conn`` is serving a request: it stays until the request is done."""
        self._waiting.pop(conn, None)
        mine = self._waiting_at.get(conn.address)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self._waiting_at[conn.address]
        self._changed()

    def forget(self, conn: Guarded) -> None:
        self.busy(conn)
        self._open.discard(conn)
