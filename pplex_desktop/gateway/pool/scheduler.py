"""Who gets a model server next.

Each backend serves one conversation at a time and makes a second caller hang in silence, so
the gateway owns the queue. It is ordered by start-time fair queuing: each request of a key
starts one round after that key's previous request, and never before the round being served,
so every key's next request comes before any key's one after that, a key cannot push everyone
else back, and an idle key saves up no credit. Within a round it is first come, first served.
Live sessions go before offline jobs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from pplex_desktop.core.errors import UnavailableError
from pplex_desktop.gateway.pool.backends import Backend, BackendPool

_log = logging.getLogger(__name__)
DEFAULT_SESSION_S = 60.0


class Priority(IntEnum):
    LIVE = 0
    OFFLINE = 1


class QueueTimeoutError(UnavailableError):
    code = "queue_timeout"


@dataclass(frozen=True, slots=True)
class QueueUpdate:
    position: int  # 1 = next to be served
    eta_s: float


@dataclass(eq=False)
class Ticket:
    id: int
    key_id: int | None
    key_name: str
    client: str
    priority: Priority
    voice: str | None
    created_at: float
    on_update: Callable[[QueueUpdate], None] | None = None
    future: asyncio.Future[Lease] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    position: int = 0
    eta_s: float = 0.0
    attempts: int = 0
    start_round: float = 0.0

    @property
    def waiting(self) -> bool:
        return not self.future.done()


@dataclass(eq=False)
class Lease:
    backend: Backend
    ticket: Ticket
    granted_at: float
    released: bool = False


class Scheduler:
    def __init__(self, pool: BackendPool, *, max_queue: int) -> None:
        self.pool = pool
        self.max_queue = max_queue
        self.on_granted: Callable[[float], None] | None = None  # how long the ticket waited
        self._waiting: list[Ticket] = []
        self._ids = itertools.count(1)
        self.avg_session_s = DEFAULT_SESSION_S
        self._on_change: list[Callable[[], None]] = []
        self._round = 0.0  # the start round of the request served last
        self._next_round: dict[int | None, float] = {}

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._on_change.append(listener)

    # -- admission ----------------------------------------------------------------------

    def capable(self, voice: str | None) -> list[Backend]:
        return [b for b in self.pool.backends if voice is None or voice in b.voices]

    def check_admission(self, voice: str | None, priority: Priority = Priority.LIVE) -> None:
        """Refuse up front what could not be served, before a WebSocket is even upgraded."""
        capable = self.capable(voice)
        if not capable:
            raise UnavailableError(
                f"No model server offers the voice {voice!r}.", code="voice_unavailable"
            )
        if all(b.healthy is False for b in capable):
            retry = max(1.0, min(b.next_check_at for b in capable) - time.monotonic())
            raise UnavailableError(
                "No model server is reachable right now; the gateway keeps retrying, try again "
                "shortly.",
                retry_after_s=retry,
                code="backend_unavailable",
            )
        if priority is Priority.LIVE and self._free(voice) is None and self.queue_full:
            raise UnavailableError(
                f"All model servers are busy and the queue is full ({self.max_queue} waiting); "
                "try again later.",
                retry_after_s=self.avg_session_s,
                code="queue_full",
            )

    @property
    def queue_full(self) -> bool:
        live = sum(1 for t in self._waiting if t.priority is Priority.LIVE)
        return live >= self.max_queue

    # -- queueing -----------------------------------------------------------------------

    def enqueue(
        self,
        *,
        key_id: int | None,
        key_name: str,
        client: str,
        priority: Priority,
        voice: str | None,
        on_update: Callable[[QueueUpdate], None] | None = None,
    ) -> Ticket:
        if priority is Priority.LIVE and self._free(voice) is None and self.queue_full:
            raise UnavailableError(
                "The queue is full; try again later.",
                retry_after_s=self.avg_session_s,
                code="queue_full",
            )
        ticket = Ticket(
            next(self._ids), key_id, key_name, client, priority, voice, time.monotonic(), on_update
        )
        ticket.start_round = self._start_round(key_id)
        self._waiting.append(ticket)
        self.dispatch()
        return ticket

    def requeue(self, ticket: Ticket) -> Ticket:
        """Put a caller whose backend failed back at the head of its round."""
        again = Ticket(
            ticket.id,
            ticket.key_id,
            ticket.key_name,
            ticket.client,
            ticket.priority,
            ticket.voice,
            ticket.created_at,
            ticket.on_update,
            attempts=ticket.attempts + 1,
            start_round=ticket.start_round,
        )
        self._waiting.append(again)
        self.dispatch()
        return again

    async def acquire(self, ticket: Ticket, max_wait_s: float) -> Lease:
        try:
            async with asyncio.timeout(max_wait_s):
                return await asyncio.shield(ticket.future)
        except TimeoutError:
            self.cancel(ticket)
            raise QueueTimeoutError(
                f"No model server became free within {max_wait_s:g} s; try again later."
            ) from None
        except asyncio.CancelledError:
            self.cancel(ticket)
            raise

    def cancel(self, ticket: Ticket) -> None:
        if ticket in self._waiting:
            self._waiting.remove(ticket)
            ticket.future.cancel()
            self._publish()
        elif ticket.future.done() and not ticket.future.cancelled():
            lease = ticket.future.result()
            if not lease.released:
                self.release(lease)

    def release(self, lease: Lease, *, failed: str | None = None) -> None:
        if lease.released:
            return
        lease.released = True
        backend = lease.backend
        backend.busy = False
        if failed is not None:
            self.pool.mark_failed(backend, failed)
        elif lease.ticket.priority is Priority.LIVE:
            duration = time.monotonic() - lease.granted_at
            self.avg_session_s = 0.8 * self.avg_session_s + 0.2 * max(duration, 1.0)
        self.dispatch()

    # -- dispatching ----------------------------------------------------------------------

    def _free(self, voice: str | None) -> Backend | None:
        for backend in self.capable(voice):
            if not backend.busy and backend.healthy is not False:
                return backend
        return None

    def _order(self) -> list[Ticket]:
        return sorted(
            self._waiting, key=lambda t: (int(t.priority), t.start_round, t.created_at, t.id)
        )

    def _start_round(self, key_id: int | None) -> float:
        start = max(self._round, self._next_round.get(key_id, 0.0))
        self._next_round[key_id] = start + 1
        if len(self._next_round) > 1024:
            # Keys whose next round is already past would start at the current round anyway.
            self._next_round = {k: v for k, v in self._next_round.items() if v > self._round}
        return start

    def dispatch(self) -> None:
        """Grant free healthy backends to the best waiting tickets, then tell the rest."""
        for ticket in self._order():
            backend = self._free(ticket.voice)
            if backend is None:
                continue
            self._waiting.remove(ticket)
            backend.busy = True
            backend.sessions_served += 1
            self._round = max(self._round, ticket.start_round)
            ticket.position = 0
            now = time.monotonic()
            ticket.future.set_result(Lease(backend, ticket, now))
            if self.on_granted is not None:
                self.on_granted(now - ticket.created_at)
        self._publish()

    def _publish(self) -> None:
        waiting = self._order()
        for backend in self.pool.backends:
            backend.queue_length = sum(
                1 for t in waiting if t.voice is None or t.voice in backend.voices
            )
        for position, ticket in enumerate(waiting, start=1):
            capable = max(1, len(self.capable(ticket.voice)))
            eta = round(position * self.avg_session_s / capable, 1)
            if (position, eta) != (ticket.position, ticket.eta_s):
                ticket.position, ticket.eta_s = position, eta
                if ticket.on_update is not None:
                    ticket.on_update(QueueUpdate(position, eta))
        for listener in list(self._on_change):
            listener()

    def waiting(self) -> list[Ticket]:
        return self._order()
