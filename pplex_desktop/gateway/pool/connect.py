"""Getting a conversation started on some model server: one way, for live sessions and jobs.

Wait for a turn, open the backend's /api/chat; a server that cannot be reached is marked failed
and the caller goes back in line for another (as long as there is one), a server that refuses
this one request stays in service and the caller hears why. Then wait for its handshake, by the
rules of moshi/session.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType

from pplex_desktop.core.redact import redact_url
from pplex_desktop.gateway.pool.backends import BackendPool, failure_cause, refused_status
from pplex_desktop.gateway.pool.scheduler import Lease, Scheduler, Ticket
from pplex_desktop.moshi import session as ms

_log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = ms.MAX_MESSAGE_BYTES
# Every close of a model server's socket is bounded by its caller's own grace (a hang-up waits
# for the server to answer what it was sent); aiohttp's 10 s default cut a longer grace short
# and dropped the socket under a real server still answering. This ceiling only guards a
# caller that forgot its own.
CLOSE_CEILING_S = 60.0
ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class StartError(Exception):
    """The conversation could not start; each caller turns this into its own kind of ending."""

    def __init__(self, reason: str, message: str, backend_failed: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # backend_refused, backend_unreachable or backend_timeout
        self.message = message
        self.backend_failed = backend_failed  # set when the lease must be released as failed


@dataclass(frozen=True)
class Connected:
    lease: Lease
    ws: aiohttp.ClientWebSocketResponse


async def connect_backend(
    scheduler: Scheduler,
    pool: BackendPool,
    *,
    wait_turn: Callable[[Ticket | None], Awaitable[Lease]],
    query: Mapping[str, str],
    voice: str | None,
    what: str,
    ident: str,
    on_connecting: Callable[[Lease], None] | None = None,
) -> Connected:
    """Lease a backend through ``wait_turn`` and open its socket, trying others if it is dead.

    ``wait_turn(None)`` enqueues; ``wait_turn(ticket)`` waits on a requeued ticket. ``what``
    ("session", "job") and ``ident`` name the caller in log lines and in the refusal sentence.
    On an exception other than StartError (a cancellation), the lease is released untouched.
    """
    who = f"{what} {ident}"
    ticket: Ticket | None = None
    while True:
        lease = await wait_turn(ticket)
        backend = lease.backend
        if on_connecting is not None:
            on_connecting(lease)
        try:
            ws = await pool.ws_session.ws_connect(
                backend.chat_url,
                params=dict(query),
                max_msg_size=MAX_MESSAGE_BYTES,
                compress=0,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_CEILING_S),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            status = refused_status(exc)
            if status is not None:
                _log.warning(
                    "The model server %s refused %s with HTTP %d; it stays in service.",
                    backend.config.label,
                    who,
                    status,
                )
                scheduler.release(lease)
                raise StartError(
                    "backend_refused",
                    f"The model server refused this {what}'s request (HTTP {status}).",
                ) from None
            _log.warning(
                "The model server %s could not be reached for %s: %s",
                backend.config.label,
                who,
                redact_url(detail),
            )
            scheduler.release(lease, failed=detail)
            others = [b for b in scheduler.capable(voice) if b.healthy is not False]
            if not others or lease.ticket.attempts >= len(pool.backends):
                raise StartError(
                    "backend_unreachable",
                    f"The model server could not be reached ({failure_cause(exc)}).",
                ) from None
            ticket = scheduler.requeue(lease.ticket)
            continue
        except BaseException:
            # Cancelled while connecting (a job deleted, a client gone): not leased any more.
            scheduler.release(lease)
            raise
        return Connected(lease, ws)


async def await_handshake(
    ws: aiohttp.ClientWebSocketResponse,
    protocol: ms.MoshiProtocol,
    now: Callable[[], float],
) -> ms.Handshake:
    """Read until the backend's handshake, within ``protocol``'s deadline; what comes before it
    (a chained gateway's queue messages, or anything a server should not send) is dropped."""
    if protocol.state is ms.State.CONNECTING:
        protocol.connected(now())
    while True:
        remaining = protocol.remaining(now())
        if remaining is not None and remaining <= 0:
            raise _no_handshake(protocol)
        try:
            # None: queued at a gateway upstream, whose own queue limit applies.
            msg = await ws.receive(timeout=remaining or None)
        except TimeoutError:
            raise _no_handshake(protocol) from None
        if msg.type in ENDED:
            raise StartError(
                "backend_refused",
                "The model server closed the session before it started; it does this when the "
                "voice or persona is refused.",
            )
        if msg.type is not WSMsgType.BINARY:
            continue
        for event in protocol.receive(msg.data, now()):
            if isinstance(event, ms.Handshake):
                return event


def _no_handshake(protocol: ms.MoshiProtocol) -> StartError:
    return StartError(
        "backend_timeout",
        f"The model server sent no handshake within {protocol.handshake_timeout:g} s.",
        backend_failed="no handshake",
    )
