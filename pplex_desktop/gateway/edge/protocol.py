"""aiohttp's HTTP protocol with the timeouts and limits it lacks.

aiohttp has a keep-alive timeout but no header or body read timeout, no connection limit and
no TLS handshake timeout of its own choosing; it answers unreadable requests in plain text
quoting the request, and it closes (never aborts) a socket whose peer stopped reading, which
then stays open for as long as the peer likes. This handler adds, per connection:

* a header timeout: the request line and headers complete within ``header_timeout_s`` of the
  connection (for the first request) or of their first byte (later ones), like nginx's
  ``client_header_timeout``; otherwise 408 and close;
* a body timeout: at most ``body_timeout_s`` without a byte, and after that allowance at least
  ``body_min_bytes_per_s`` on average (Apache's mod_reqtimeout ``body=20,MinRate=500``): one
  byte every few seconds is not an upload;
* admission through the ConnectionGuard (connections.py);
* JSON answers for parser failures (parse_errors.py), logged once per burst;
* an abort ``close_grace_s`` after a close that the peer does not let finish.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from pplex_desktop.core.errors import PplexError
from pplex_desktop.gateway.edge.accesslog import UNREADABLE
from pplex_desktop.gateway.edge.burstlog import BurstLog
from pplex_desktop.gateway.edge.connections import ConnectionGuard, readable
from pplex_desktop.gateway.edge.listener import AcceptGate
from pplex_desktop.gateway.edge.parse_errors import describe, raw_response

_log = logging.getLogger("pplex_desktop.gateway.edge.connections")
RETRY_AFTER_S = 5


class RequestTimeoutError(PplexError):
    code = "request_timeout"
    status = 408


class _State(Enum):
    WAITING = "waiting"  # no request in flight
    BUSY = "busy"  # serving a request (or a WebSocket session)


class GuardedHandler(RequestHandler):
    def __init__(self, manager: GuardedServer, *, loop: asyncio.AbstractEventLoop, **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        self._guard = manager.guard
        self._gate = manager.gate
        self._limits = manager.guard.limits
        self._burst = manager.burst
        self._address = "unknown"
        self._state = _State.WAITING
        self._first = True
        self._seen_bytes = False  # of a request whose headers are not complete yet
        self._timer: asyncio.TimerHandle | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        self._raw_transport: asyncio.Transport | None = None
        self._lost = False
        self._refused = False
        self._body: StreamReader | None = None
        self._previous_body: StreamReader | None = None
        self._body_start = 0.0
        self._body_bytes = 0
        self._last_byte = 0.0
        self._last_check = 0.0

    @property
    def address(self) -> str:
        return self._address

    # -- connection life --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw_transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and self._gate is not None:
            self._gate.adopt(sock.fileno())
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._address = str(peer[0])
        if not self._guard.admit(self):
            self._refused = True
            self._burst.event(
                "refused",
                self._address,
                f"The gateway refused a connection from {self._address}: all "
                f"{self._limits.max_connections} connections it may hold are serving requests.",
            )
            transport.write(
                raw_response(
                    503,
                    "too_many_connections",
                    "The gateway is serving as many connections as it can; try again in a "
                    "few seconds.",
                    retry_after_s=RETRY_AFTER_S,
                )
            )
            transport.close()
            self._abort_later(transport)
            return
        super().connection_made(transport)
        self._arm(self._limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        self._cancel_timer()
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        self._guard.forget(self)
        if self._refused:
            return
        super().connection_lost(exc)

    async def start(self) -> None:
        try:
            await super().start()
        finally:
            # aiohttp closes the transport here and waits for the peer to take what is still
            # buffered: a client that stopped reading would keep the socket forever.
            if self._raw_transport is not None and not self._lost:
                self._abort_later(self._raw_transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._state is _State.BUSY:
            if self._body is not None:
                self._body_bytes += len(data)
                self._last_byte = self._loop.time()
        elif data and not self._seen_bytes:
            lingering = self._previous_body is not None and not self._previous_body.is_eof()
            if not lingering:  # the rest of an unread body is not a new request
                self._seen_bytes = True
                if not self._first:
                    self._arm(self._limits.header_timeout_s, self._headers_late)
        super().data_received(data)

    # -- requests ------------------------------------------------------------------------------

    def request_started(self, payload: StreamReader) -> None:
        """The request line and headers are complete (called from the request factory)."""
        self._state = _State.BUSY
        self._first = False
        self._seen_bytes = False
        self._cancel_timer()
        self._guard.busy(self)
        self._previous_body = payload
        if not payload.is_eof():
            now = self._loop.time()
            self._body = payload
            self._body_start = self._last_byte = self._last_check = now
            self._body_bytes = 0
            self._arm(self._limits.body_timeout_s, self._check_body)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._state = _State.WAITING
            self._body = None
            self._cancel_timer()
            if not self._lost:
                self._guard.waiting(self)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            # A handler bug (the error middleware normally answers first): aiohttp logs it
            # with its traceback; the client gets the documented JSON, not plain text.
            super().handle_error(request, status, exc, message)
            code = "gateway_timeout" if status == 504 else "internal_error"
            sentence = "The gateway hit an unexpected error; it has been logged for the operator."
            return _closing(json_error_response(status, code, sentence))
        request[UNREADABLE] = True
        status, code, sentence = describe(exc, self.max_line_size)
        self._burst.event(
            "unreadable",
            self._address,
            f"A request from {self._address} could not be read: "
            f"{sentence.split(': ', 1)[-1].rstrip('.')}; the gateway answered {status}.",
            logging.INFO,
        )
        if request.writer.output_size > 0:
            raise ConnectionError("A response was already sent on this connection.")
        return _closing(json_error_response(status, code, sentence))

    # -- timeouts ------------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self._state is _State.BUSY or self._lost:
            return
        limit = self._limits.header_timeout_s
        self._guard.forget(self)
        if self._seen_bytes:
            self._burst.event(
                "header_timeout",
                self._address,
                f"A connection from {self._address} did not complete its request headers "
                f"within {limit:g} s; the gateway answered 408 and closed it.",
                logging.INFO,
            )
            self._close_now(
                raw_response(
                    408,
                    "request_timeout",
                    f"The request line and headers did not arrive within {limit:g} s.",
                )
            )
        else:
            self._burst.event(
                "silent",
                self._address,
                f"A connection from {self._address} sent nothing within {limit:g} s; the "
                "gateway closed it.",
                logging.INFO,
            )
            self._close_now(None)

    def _check_body(self) -> None:
        self._timer = None
        body = self._body
        if body is None or body.is_eof() or self._lost or self._upgraded:
            return
        now = self._loop.time()
        if self._reading_paused:
            # The handler is behind, not the client: that time does not count against it.
            self._body_start += now - self._last_check
            self._last_byte = now
        self._last_check = now
        limit = self._limits.body_timeout_s
        rate = self._limits.body_min_bytes_per_s
        deadline = self._last_byte + limit
        if rate > 0:
            deadline = min(deadline, self._body_start + limit + self._body_bytes / rate)
        if now < deadline:
            self._arm(min(deadline - now, limit), self._check_body)
            return
        self._body = None
        # The answer goes out now; what is left of the body is not worth waiting for.
        self._lingering_time = 0.0
        self._burst.event(
            "body_timeout",
            self._address,
            f"A request body from {self._address} arrived too slowly; the gateway answered 408.",
            logging.INFO,
        )
        body.set_exception(
            RequestTimeoutError(
                f"The request body arrived too slowly: the gateway waits at most {limit:g} s "
                f"for each part of it and needs at least {rate:g} bytes a second on average."
            )
        )

    # -- closing ---------------------------------------------------------------------------------

    def has_unread_bytes(self) -> bool:
        """Whether the client sent bytes this loop has not read yet (it ran late)."""
        transport = self._raw_transport
        if transport is None or self._lost:
            return False
        sock = transport.get_extra_info("socket")
        return sock is not None and readable(sock.fileno())

    def evict(self) -> None:
        """Give way to a newcomer (called by the guard, which no longer counts this one)."""
        self._burst.event(
            "evicted",
            self._address,
            f"The gateway is at its connection limit ({self._limits.max_connections} in all, "
            f"{self._limits.max_waiting_per_address} waiting per address); it closed the "
            f"oldest connection without a request in flight, from {self._address}.",
        )
        answer = None
        if self._seen_bytes:
            # 408, not 503: the request was not complete when the gateway stopped waiting.
            answer = raw_response(
                408,
                "request_timeout",
                "The gateway closed this connection to make room for others: the request was "
                "not complete. Send the whole request at once.",
            )
        self._close_now(answer)

    def _close_now(self, answer: bytes | None) -> None:
        self._cancel_timer()
        transport = self._raw_transport
        if transport is None or self._lost:
            return
        if answer is not None and not transport.is_closing():
            transport.write(answer)
        sock = transport.get_extra_info("socket")
        if sock is not None and self._gate is not None:
            self._gate.closing(sock)
        self.force_close()
        self._abort_later(transport)

    def _abort_later(self, transport: asyncio.Transport) -> None:
        if self._abort_handle is None and not self._lost:
            self._abort_handle = self._loop.call_later(
                self._limits.close_grace_s, self._abort, transport
            )

    def _abort(self, transport: asyncio.Transport) -> None:
        self._abort_handle = None
        if not self._lost:
            transport.abort()


def json_error_response(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


class GuardedServer(web.Server):
    def __init__(
        self,
        guard: ConnectionGuard,
        burst: BurstLog,
        handler: Any,
        gate: AcceptGate | None = None,
        **kwargs: Any,
    ) -> None:
        self.guard = guard
        self.burst = burst
        self.gate = gate
        self._inner_factory = kwargs.pop("request_factory")
        super().__init__(handler, request_factory=self._make_guarded_request, **kwargs)

    def _make_guarded_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        if isinstance(protocol, GuardedHandler):
            protocol.request_started(payload)
        request: web.BaseRequest = self._inner_factory(message, payload, protocol, writer, task)
        return request

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections go through the guard."""

    def __init__(
        self,
        app: web.Application,
        guard: ConnectionGuard,
        burst: BurstLog,
        gate: AcceptGate | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=guard.limits.keepalive_timeout_s, **kwargs)
        self.guard = guard
        self.burst = burst
        self.gate = gate

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return GuardedServer(
            self.guard,
            self.burst,
            base.request_handler,
            self.gate,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **base._kwargs,
        )
