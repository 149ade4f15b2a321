"""The life of one live session, shared by /api/chat (native bytes) and /ws/stream (PCM).

queued -> connecting -> preparing -> live -> ended. Every way a session can end resolves one
future with a SessionEnd that carries the close code and a sentence, so the client always learns
why (never a bare 1006 from a gateway decision) and the backend is always released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import aiohttp
from aiohttp import WSMsgType, web

from pplex_desktop.core.close_codes import INPUT_REFUSALS, CloseCode
from pplex_desktop.core.tasks import stop_task, stop_tasks
from pplex_desktop.gateway.api.metrics import RELAY_SAMPLE_EVERY
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.events import SessionEnded, SessionStarted
from pplex_desktop.gateway.live import watchdog
from pplex_desktop.gateway.live.params import SessionParams
from pplex_desktop.gateway.live.sessions import LiveSession
from pplex_desktop.gateway.pool.connect import StartError, await_handshake, connect_backend
from pplex_desktop.gateway.pool.scheduler import (
    Lease,
    Priority,
    QueueTimeoutError,
    QueueUpdate,
    Ticket,
)
from pplex_desktop.moshi.session import MoshiProtocol

_log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_EARLY_BYTES = 1024 * 1024  # what a client may send before the session is live
SEND_BUFFER_BYTES = 32 * 1024
CLOSE_GRACE_S = 2.0
# Below asyncio's default high-water mark a write never waits for the socket to drain.
DIRECT_SEND_LIMIT = 32 * 1024  # a small kernel buffer makes a stalled reader visible sooner


class SessionEnd(Exception):
    """How a session ended: raised by whatever ends it, resolved once per session."""

    def __init__(
        self,
        code: CloseCode,
        message: str,
        reason: str,
        backend_failed: str | None = None,
        client_gone: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason  # short machine code, e.g. "idle" or "backend_failed"
        self.message = message  # the sentence a person reads
        self.backend_failed = backend_failed
        self.client_gone = client_gone


def _ended(stop: watchdog.Stop) -> SessionEnd:
    return SessionEnd(stop.code, stop.message, stop.reason, backend_failed=stop.backend_failed)


def close_reason(message: str) -> bytes:
    """A WebSocket close reason is at most 123 bytes of UTF-8."""
    data = message.encode("utf-8")
    if len(data) <= 123:
        return data
    return data[:120].decode("utf-8", "ignore").encode("utf-8") + b"..."


def make_client_socket(
    request: web.Request, ctx: GatewayContext, *, protocols: tuple[str, ...] = ()
) -> web.WebSocketResponse:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    return web.WebSocketResponse(
        heartbeat=ctx.settings.ws_heartbeat_s,
        compress=False,  # Opus and PCM do not compress; deflate would only cost CPU
        max_msg_size=MAX_MESSAGE_BYTES,
        timeout=2.0,
        writer_limit=8 * 1024,
        protocols=protocols,
    )


class Relay(ABC):
    route: ClassVar[str]

    def __init__(
        self,
        request: web.Request,
        ctx: GatewayContext,
        params: SessionParams,
        session: LiveSession,
        ws: web.WebSocketResponse,
    ) -> None:
        self.request = request
        self.ctx = ctx
        self.params = params
        self.session = session
        self.ws = ws
        loop = asyncio.get_running_loop()
        self.loop = loop
        self._end: asyncio.Future[SessionEnd] = loop.create_future()
        self._early: list[bytes] = []  # what the client sent before the session went live
        self._early_bytes = 0
        self._live = False
        self._outbox: deque[tuple[bytes | str, float]] = deque()
        self._out_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._out_audio_s = 0.0
        self._tasks: list[asyncio.Task[None]] = []  # every task of this session, for the end
        self._writer: asyncio.Task[None] | None = None
        self.ticket: Ticket | None = None
        self.lease: Lease | None = None
        self.backend_ws: aiohttp.ClientWebSocketResponse | None = None
        self.live_since = 0.0
        self.last_client_audio = 0.0
        self.last_backend_audio = 0.0

    # -- ending ---------------------------------------------------------------------------

    def request_end(
        self,
        code: CloseCode,
        message: str,
        *,
        reason: str = "ended",
        backend_failed: str | None = None,
        client_gone: bool = False,
    ) -> None:
        if not self._end.done():
            self._end.set_result(SessionEnd(code, message, reason, backend_failed, client_gone))

    def _end_from(self, end: SessionEnd) -> None:
        if not self._end.done():
            self._end.set_result(end)

    async def _race(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` unless the session ends first; then cancel it and raise the end."""
        step = getattr(coro, "__qualname__", "step")  # names the task in a log line
        task = asyncio.create_task(coro, name=f"{step}-{self.session.id}")
        waitables: set[asyncio.Future[Any]] = {task, self._end}
        expected = (SessionEnd, ConnectionError, aiohttp.ClientError)
        try:
            await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await stop_task(task, expected=expected)  # a cancelled caller leaves nothing behind
            raise
        if task.done():
            return task.result()
        # Whatever the loser raises now comes after the session's end: a lost connection is
        # expected, anything else is a bug worth a log line, and neither hides the end.
        await stop_task(task, expected=expected)
        raise self._end.result()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coro
            except SessionEnd as end:
                self._end_from(end)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 (a bug must end one session, not the gateway)
                _log.exception("The %s task of session %s failed.", name, self.session.id)
                self.request_end(
                    CloseCode.BACKEND_ERROR,
                    "The gateway hit an unexpected error in this session; it has been logged.",
                    reason="internal_error",
                )

        task = asyncio.create_task(guarded(), name=f"{name}-{self.session.id}")
        self._tasks.append(task)
        return task

    # -- the client side ------------------------------------------------------------------

    async def _read_client(self) -> None:
        async for msg in self.ws:
            if msg.type is WSMsgType.BINARY:
                data: bytes = msg.data
                if self._live:
                    # Forwarding in the reading task itself: no hop through a queue, and a
                    # backend that reads slowly slows this client down through TCP.
                    timed = self.session.messages_up % RELAY_SAMPLE_EVERY == 0
                    began = self.loop.time() if timed else 0.0
                    try:
                        await self.forward_up(data)
                    except ConnectionError:
                        raise self.backend_lost() from None
                    if timed:
                        self.ctx.metrics.up_hop(self.loop.time() - began)
                    self.session.messages_up += 1
                    continue
                self._early_bytes += len(data)
                if self._early_bytes > MAX_EARLY_BYTES:
                    raise SessionEnd(
                        CloseCode.POLICY,
                        "Too much audio arrived before the session was ready; wait for the "
                        "handshake before sending.",
                        "early_audio",
                    )
                self._early.append(data)
            elif msg.type is WSMsgType.TEXT:
                self.on_client_text(str(msg.data))
        # aiohttp has already answered the client's close: the key's slot is free from now.
        self.session.holds_slot = False
        self.request_end(
            CloseCode.NORMAL,
            "The client closed the session.",
            reason="client_closed",
            client_gone=True,
        )

    async def _go_live(self) -> None:
        """Hand what the client sent early to the subclass, then forward directly."""
        while self._early:
            early, self._early = self._early, []
            for data in early:
                await self.early_message(data)
        self._live = True

    def on_client_text(self, text: str) -> None:
        """Text frames are not part of the native protocol; subclasses may use them."""
        del text

    def send(self, data: bytes | str, audio_s: float = 0.0) -> None:
        """Queue a message for the client; a client that lags too far behind is let go."""
        self._outbox.append((data, audio_s))
        self._out_audio_s += audio_s
        self._drained.clear()
        self._out_ready.set()
        if self._out_audio_s > self.ctx.settings.max_client_lag_s:
            self.request_end(
                CloseCode.POLICY,
                f"The client fell more than {self.ctx.settings.max_client_lag_s:g} s of audio "
                "behind; it is not reading its messages.",
                reason="slow_client",
            )

    async def deliver(self, data: bytes | str, audio_s: float = 0.0) -> None:
        """Send to the client now when its socket has room, else queue it with lag accounting."""
        transport = self.request.transport
        if (
            not self._outbox
            and transport is not None
            and transport.get_write_buffer_size() < DIRECT_SEND_LIMIT
            and not self.ws.closed
        ):
            timed = self.session.messages_down % RELAY_SAMPLE_EVERY == 0
            began = self.loop.time() if timed else 0.0
            try:
                if isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    await self.ws.send_bytes(data)
            except ConnectionError:
                self.request_end(
                    CloseCode.NORMAL,
                    "The client connection was lost.",
                    reason="client_lost",
                    client_gone=True,
                )
                return
            if timed:
                self.ctx.metrics.down_hop(self.loop.time() - began)
            self.session.messages_down += 1
            return
        self.send(data, audio_s)

    def backend_lost(self) -> SessionEnd:
        return SessionEnd(
            CloseCode.BACKEND_ERROR,
            "The model server closed the connection unexpectedly.",
            "backend_failed",
            backend_failed="connection lost mid-session",
        )

    async def _write_client(self) -> None:
        try:
            while not self.ws.closed:
                await self._out_ready.wait()
                while self._outbox and not self.ws.closed:
                    data, audio_s = self._outbox.popleft()
                    if isinstance(data, str):
                        await self.ws.send_str(data)
                    else:
                        await self.ws.send_bytes(data)
                    self._out_audio_s -= audio_s
                    self.session.messages_down += 1
                self._out_ready.clear()
                self._drained.set()
        except ConnectionError:
            self.request_end(
                CloseCode.NORMAL,
                "The client connection was lost.",
                reason="client_lost",
                client_gone=True,
            )

    async def _flush_client(self, seconds: float) -> None:
        if not self._outbox:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._drained.wait()

    # -- hooks for the two endpoints ------------------------------------------------------------

    @abstractmethod
    def on_queue(self, update: QueueUpdate) -> None: ...

    @abstractmethod
    def on_status(self, state: str) -> None: ...

    @abstractmethod
    def on_ready(self, handshake: bytes) -> None: ...

    @abstractmethod
    async def early_message(self, data: bytes) -> None:
        """A message the client sent before the session went live."""

    @abstractmethod
    async def forward_up(self, data: bytes) -> None:
        """One binary message from the client, during the live session."""

    @abstractmethod
    async def pump_down(self) -> None: ...

    @abstractmethod
    async def on_end(self, end: SessionEnd) -> None: ...

    # -- the stages -----------------------------------------------------------------------

    def _queue_update(self, update: QueueUpdate) -> None:
        self.session.position = update.position
        self.on_queue(update)

    async def _wait_turn(self, ticket: Ticket | None) -> Lease:
        scheduler = self.ctx.scheduler
        self.lease = None
        self.ticket = ticket or scheduler.enqueue(
            key_id=self.session.key_id,
            key_name=self.session.key_name,
            client=self.session.client,
            priority=Priority.LIVE,
            voice=self.params.voice,
            on_update=self._queue_update,
        )
        self.session.state = "queued"
        self.ctx.sessions.changed()
        try:
            lease = await scheduler.acquire(self.ticket, self.ctx.settings.queue_max_wait_s)
        except QueueTimeoutError as exc:
            raise SessionEnd(CloseCode.TRY_LATER, exc.message, "queue_timeout") from None
        self.lease = lease
        return lease

    def _connecting(self, lease: Lease) -> None:
        self.session.state = "connecting"
        self.session.backend = lease.backend.config.label
        self.ctx.sessions.changed()
        self.on_status("connecting")

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        """Get a backend and open its socket; a dead backend sends the caller back in line."""
        try:
            connected = await self._race(
                connect_backend(
                    self.ctx.scheduler,
                    self.ctx.backends,
                    wait_turn=self._wait_turn,
                    query=self.params.backend_query(),
                    voice=self.params.voice,
                    what="session",
                    ident=self.session.id,
                    on_connecting=self._connecting,
                )
            )
        except StartError as exc:
            raise SessionEnd(CloseCode.BAD_GATEWAY, exc.message, exc.reason) from None
        self.lease = connected.lease
        return connected.ws

    async def _await_handshake(self, backend_ws: aiohttp.ClientWebSocketResponse) -> bytes:
        self.session.state = "preparing"
        self.ctx.sessions.changed()
        self.on_status("preparing")
        protocol = MoshiProtocol(handshake_timeout=self.ctx.settings.handshake_timeout_s)
        try:
            handshake = await self._race(await_handshake(backend_ws, protocol, self.loop.time))
        except StartError as exc:
            raise SessionEnd(
                CloseCode.BAD_GATEWAY, exc.message, exc.reason, backend_failed=exc.backend_failed
            ) from None
        return handshake.raw

    async def _watch(self) -> None:
        limits = watchdog.Limits.from_settings(self.ctx.settings)
        while True:
            activity = watchdog.Activity(
                self.live_since, self.last_client_audio, self.last_backend_audio
            )
            verdict = watchdog.check(limits, activity, self.loop.time())
            if isinstance(verdict, watchdog.Stop):
                raise _ended(verdict)
            await asyncio.sleep(max(0.0, verdict.until - self.loop.time()))

    def client_audio(self, seconds: float) -> None:
        """Account audio from the client and refuse it faster than real time."""
        if seconds <= 0:
            return
        now = self.loop.time()
        self.last_client_audio = now
        self.session.audio_in_s += seconds
        refused = watchdog.pace(
            self.session.audio_in_s, self.live_since, now, self.ctx.settings.realtime_tolerance_s
        )
        if refused is not None:
            raise _ended(refused)

    def backend_audio(self, seconds: float) -> None:
        if seconds > 0:
            self.last_backend_audio = self.loop.time()
            self.session.audio_out_s += seconds

    def backend_closed(self, msg: aiohttp.WSMessage) -> SessionEnd:
        ws = self.backend_ws
        code = ws.close_code if ws is not None else None
        if msg.type is not WSMsgType.ERROR and code == CloseCode.NORMAL:
            return SessionEnd(
                CloseCode.NORMAL, "The model server ended the session.", "backend_closed"
            )
        if msg.type is not WSMsgType.ERROR and code in INPUT_REFUSALS:
            return SessionEnd(
                CloseCode(code),
                f"The model server ended the session because it received {INPUT_REFUSALS[code]} "
                f"(close code {code}).",
                "input_refused",
            )
        # Going away, an error (BACKEND_ERROR) or a dropped connection all mean this backend
        # cannot be trusted until a health check says otherwise.
        return SessionEnd(
            CloseCode.BACKEND_ERROR,
            "The model server closed the connection unexpectedly.",
            "backend_failed",
            backend_failed=f"connection lost mid-session (close code {code})",
        )

    # -- running it all -------------------------------------------------------------------

    async def run(self) -> None:
        self.session.end = lambda code, message: self.request_end(
            code, message, reason="ended_by_gateway"
        )
        self._spawn(self._read_client(), "read-client")
        self._writer = self._spawn(self._write_client(), "write-client")
        try:
            backend_ws = self.backend_ws = await self._connect()
            handshake = await self._await_handshake(backend_ws)
            self.live_since = self.last_client_audio = self.last_backend_audio = self.loop.time()
            self.session.state = "live"
            self.session.started_at = time.time()
            self.ctx.sessions.changed()
            self.ctx.events.emit(
                SessionStarted(
                    self.session.id,
                    self.route,
                    self.session.key_name,
                    self.session.client,
                    self.session.backend or "",
                )
            )
            self.on_ready(handshake)
            await self._race(self._go_live())
            self._spawn(self.pump_down(), "pump-down")
            self._spawn(self._watch(), "watch")
            await self._end
        except SessionEnd as end:
            self._end_from(end)
        finally:
            await self._finish()

    async def _finish(self) -> None:
        end = (
            self._end.result()
            if self._end.done()
            else SessionEnd(CloseCode.BACKEND_ERROR, "The session was interrupted.", "interrupted")
        )
        try:
            await self._close_down(end)
        except asyncio.CancelledError:
            # The caller is cancelled mid-way (a shutdown past its grace): the cancellation goes
            # on, but first the model server hears a close and goes back to the pool, and no
            # task of this session is left running.
            for task in self._tasks:
                task.cancel()
            try:
                if self.backend_ws is not None and not self.backend_ws.closed:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(CLOSE_GRACE_S):
                            await self.backend_ws.close()
            finally:
                self._release(end)  # even when cancelled once more during that close
            raise
        finally:
            self._account(end)

    async def _close_down(self, end: SessionEnd) -> None:
        if not end.client_gone and not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.on_end(end)
            if end.reason != "slow_client":
                await self._flush_client(1.0)
        # The writer may be waiting for the client to drain its socket. aiohttp shares one
        # drain future per connection, so cancelling the writer there would also fail the close
        # frame below; it stops by itself once the socket is closed.
        others = [task for task in self._tasks if task is not self._writer]
        if self.backend_ws is not None and end.backend_failed is None:
            # Close before cancelling the pump: aiohttp takes a cancelled receive() for an
            # abnormal closure and then drops the socket without a close handshake, and a model
            # server still answering frames raises on it (Kyutai: "Cannot write to closing
            # transport", its handler never finishes). A close lets it answer and end normally.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self.backend_ws.close()
        await stop_tasks(others)
        if self.backend_ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self.backend_ws.close()
        self._release(end)
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self.ws.close(code=end.code, message=close_reason(end.message))
        await stop_tasks(task for task in self._tasks if task is self._writer)

    def _release(self, end: SessionEnd) -> None:
        """Give the model server back (or leave the queue), once."""
        lease, ticket, self.lease, self.ticket = self.lease, self.ticket, None, None
        if lease is not None:
            self.ctx.scheduler.release(lease, failed=end.backend_failed)
        elif ticket is not None:
            self.ctx.scheduler.cancel(ticket)

    def _account(self, end: SessionEnd) -> None:
        s = self.session
        if s.audio_in_s or s.audio_out_s:
            self.ctx.keystore.record_usage(
                s.key_id, audio_in_s=s.audio_in_s, audio_out_s=s.audio_out_s
            )
        duration = time.time() - s.started_at if s.started_at else 0.0
        _log.info(
            "Session %s (%s, key '%s') ended after %.1f s: %s",
            s.id,
            self.route,
            s.key_name,
            duration,
            end.message,
        )
        self.ctx.events.emit(
            SessionEnded(
                s.id,
                self.route,
                s.key_name,
                s.client,
                s.backend,
                end.code,
                end.reason,
                end.message,
                duration,
                s.audio_in_s,
                s.audio_out_s,
            )
        )
