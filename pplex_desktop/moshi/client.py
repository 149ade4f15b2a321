"""An async session against any Moshi / PersonaPlex endpoint (a model server or our gateway).

It hides the flavour differences in PROTOCOL.md: Ogg headers in the first audio message or in
messages of their own, a first input frame dropped or not. It never sends audio before the
server's handshake, because PersonaPlex silently discards anything sent while it reads prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import numpy.typing as npt
from aiohttp import WSMsgType

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.redact import redact_url
from pplex_desktop.core.tasks import stop_task
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi import session as ms
from pplex_desktop.moshi.codec import CodecError, OpusDecoder, OpusEncoder, Pcm
from pplex_desktop.moshi.framing import Framer

_log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = ms.MAX_MESSAGE_BYTES
# The server's close frame is awaited this long after ours before the socket is dropped.
CLOSE_TIMEOUT_S = 10.0
# Neither server pings; ours keeps a silent connection (a long queue) known to be alive.
HEARTBEAT_S = 20.0
# What is left of a close once the server has not answered it: aiohttp's own close frame.
RELEASE_TIMEOUT_S = 2.0
MAX_REFUSAL_BYTES = 64 * 1024
USER_AGENT = "pplex-desktop"


class ConnectError(PplexError):
    """The endpoint could not be reached or refused the connection."""

    code = "connect_failed"
    status = 502


class SessionClosedError(PplexError):
    """Audio could not be sent because the session has ended; events() says how."""

    code = "session_closed"
    status = 410


class HandshakeError(PplexError):
    """The endpoint accepted the socket but never said it was ready."""

    code = "handshake_failed"
    status = 502


@dataclass(frozen=True, slots=True)
class AudioEvent:
    pcm: Pcm


@dataclass(frozen=True, slots=True)
class TextEvent:
    text: str


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    message: str


@dataclass(frozen=True, slots=True)
class MetadataEvent:
    data: Any


@dataclass(frozen=True, slots=True)
class ClosedEvent:
    code: int | None
    reason: str


Event: TypeAlias = AudioEvent | TextEvent | ErrorEvent | MetadataEvent | ClosedEvent


@dataclass(frozen=True)
class SessionOptions:
    text_prompt: str | None = None
    voice_prompt: str | None = None
    seed: int | None = None
    api_key: str | None = None
    key_in_query: bool = False
    handshake_timeout: float = 60.0
    open_timeout: float = 10.0
    extra_query: Mapping[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None
    origin: str | None = None


def chat_url(base: str, options: SessionOptions | None = None) -> str:
    """Normalise a ws/wss/http/https base URL, with or without /api/chat, and add the query."""
    options = options or SessionOptions()
    parts = urlsplit(base.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConnectError(
            f"'{base}' is not a server address; use ws://, wss://, http:// or https://host:port."
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/api/chat") and not path.endswith("/ws/stream"):
        path += "/api/chat"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if options.text_prompt is not None:
        query["text_prompt"] = options.text_prompt
    if options.voice_prompt is not None:
        query["voice_prompt"] = options.voice_prompt
    if options.seed is not None:
        query["seed"] = str(options.seed)
    if options.api_key is not None and options.key_in_query:
        query["api_key"] = options.api_key
    query.update(options.extra_query)
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


class _RefusalBody:
    """Keeps the body of an answer that refused the upgrade: aiohttp's error drops it."""

    def __init__(self) -> None:
        self.body = b""
        self.reason = ""

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if response.status != 101:
            self.reason = response.reason or ""
            with contextlib.suppress(aiohttp.ClientError, OSError):
                while len(self.body) < MAX_REFUSAL_BYTES:
                    chunk = await response.content.read(MAX_REFUSAL_BYTES - len(self.body))
                    if not chunk:
                        break
                    self.body += chunk
        return response


def _refusal_message(status: int, refusal: _RefusalBody) -> str:
    try:
        message = str(json.loads(refusal.body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = refusal.body.decode("utf-8", "replace").strip()[:200] or refusal.reason
    return f"The server refused the connection with HTTP {status}: {message}"


def _connect_failure(exc: BaseException) -> str:
    """Why the socket did not open, in words: never aiohttp's or the socket's wording."""
    if isinstance(exc, TimeoutError):
        return "the connection timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(
        exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError
    ):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            "the connection was refused"
            if isinstance(exc.os_error, ConnectionRefusedError)
            else "the connection failed"
        )
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"it did not open a WebSocket ({exc.message})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "it closed the connection"
    return str(exc) or type(exc).__name__


def _close_payload(code: int, reason: str) -> bytes:
    data = reason.encode("utf-8")
    if len(data) > 123:  # a close frame's reason is at most 123 bytes
        data = data[:120].decode("utf-8", "ignore").encode("utf-8") + b"..."
    return struct.pack("!H", code) + data


class MoshiSession:
    """One conversation. Use ``async with await MoshiSession.connect(...)``.

    The socket is aiohttp's, in a client session of its own that lives as long as the socket.
    What the messages mean, and what may be sent when, is moshi/session.py's business.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        protocol: ms.MoshiProtocol,
        url: str,
    ) -> None:
        self._http = http
        self._ws = ws
        self._protocol = protocol
        self.url = url
        self._encoder = OpusEncoder()
        self._decoder = OpusDecoder()
        self._framer = Framer()
        self.handshake: proto.Handshake | None = protocol.handshake
        self.frames_sent = 0
        self.samples_received = 0
        self._close_code: int | None = None  # from the server's close frame, 1006 without one
        self._sent_close: tuple[int, str] | None = None
        self._ended = asyncio.Event()  # the connection is over and its end is known
        self._receiving = False  # an events() reader is waiting for the next message
        self._drain: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        options: SessionOptions | None = None,
        *,
        on_metadata: Callable[[Any], None] | None = None,
    ) -> MoshiSession:
        """Open the socket and wait for the handshake; ``on_metadata`` sees messages before it."""
        options = options or SessionOptions()
        full_url = chat_url(url, options)
        safe_url = redact_url(full_url)
        headers = {"User-Agent": USER_AGENT}
        if options.api_key is not None and not options.key_in_query:
            headers["X-API-Key"] = options.api_key
        refusal = _RefusalBody()
        http = aiohttp.ClientSession(
            trust_env=False,  # never a proxy from the environment
            timeout=aiohttp.ClientTimeout(total=None),
            middlewares=(refusal,),
        )
        try:
            ws = await cls._open(
                http,
                full_url=full_url,
                safe_url=safe_url,
                headers=headers,
                options=options,
                refusal=refusal,
            )
        except BaseException:
            await http.close()
            raise
        protocol = ms.MoshiProtocol(ms.Role.CLIENT, handshake_timeout=options.handshake_timeout)
        session = cls(http, ws, protocol, safe_url)
        try:
            await session._await_handshake(on_metadata)
        except BaseException:
            await session._release()
            raise
        session.handshake = protocol.handshake
        _log.info("Connected to %s.", safe_url)
        return session

    @staticmethod
    async def _open(
        http: aiohttp.ClientSession,
        *,
        full_url: str,
        safe_url: str,
        headers: dict[str, str],
        options: SessionOptions,
        refusal: _RefusalBody,
    ) -> aiohttp.ClientWebSocketResponse:
        try:
            async with asyncio.timeout(options.open_timeout):
                return await http.ws_connect(
                    full_url,
                    headers=headers,
                    origin=options.origin,
                    ssl=options.ssl_context if options.ssl_context is not None else True,
                    max_msg_size=MAX_MESSAGE_BYTES,
                    compress=0,
                    autoclose=False,  # a close we begin is finished by whoever reads
                    autoping=True,
                    heartbeat=HEARTBEAT_S,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT_S),
                    proxy=None,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 101:  # upgraded, but not to a WebSocket we can speak
                raise ConnectError(
                    f"Could not connect to {safe_url}: {_connect_failure(exc)}."
                ) from None
            raise ConnectError(_refusal_message(exc.status, refusal), status=exc.status) from None
        except aiohttp.InvalidURL:
            raise ConnectError(f"'{safe_url}' is not a valid WebSocket address.") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Before ValueError: a certificate that fails verification is both.
            raise ConnectError(
                f"Could not connect to {safe_url}: {_connect_failure(exc)}."
            ) from None
        except ValueError:  # yarl's word for a port out of range and the like
            raise ConnectError(f"'{safe_url}' is not a valid WebSocket address.") from None

    async def _await_handshake(self, on_metadata: Callable[[Any], None] | None) -> None:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        protocol.connected(loop.time())
        while True:
            remaining = protocol.remaining(loop.time())
            if remaining is not None and remaining <= 0:
                raise await self._no_handshake()
            try:
                # No deadline while our gateway says we are queued: the wait is its business
                # (it has its own limit); the clock starts again once a model server prepares.
                msg = await self._ws.receive(timeout=remaining or None)
            except TimeoutError:
                raise await self._no_handshake() from None
            if msg.type is WSMsgType.TEXT:
                continue
            if msg.type is not WSMsgType.BINARY:
                closed = await self._end_of(msg)
                framed = msg.type is WSMsgType.CLOSE
                detail = f" (close code {closed.code}: {closed.reason})" if framed else ""
                raise HandshakeError(
                    f"The server closed the connection before the handshake{detail}. "
                    "A PersonaPlex server does this when the voice or text prompt is missing "
                    "or refused."
                )
            for event in protocol.receive(msg.data, loop.time()):
                match event:
                    case ms.Handshake():
                        return
                    case ms.ServerError(message=text):
                        raise HandshakeError(f"The server reported an error: {text}")
                    case ms.Queued(data=data) | ms.Metadata(data=data):
                        if on_metadata is not None:
                            on_metadata(data)
                    case ms.ProtocolViolation(sentence=sentence):
                        _log.warning("Ignoring a message before the handshake: %s", sentence)

    async def _no_handshake(self) -> HandshakeError:
        await self._ws.close(code=CloseCode.NORMAL, message=b"handshake timeout")
        return HandshakeError(
            f"{self.url} accepted the connection but sent no handshake within "
            f"{self._protocol.handshake_timeout:g} s; the model server may be busy or stuck."
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send_pcm(self, pcm: npt.ArrayLike) -> int:
        """Send float PCM of any length; whole 80 ms frames go out now, the rest waits."""
        frames = self._framer.push(pcm)
        for frame in frames:
            await self.send_frame(frame)
        return len(frames)

    async def flush(self) -> None:
        """Send what is left of the audio, padded with silence to a whole frame."""
        frame = self._framer.flush()
        if frame is not None:
            await self.send_frame(frame)

    async def send_frame(self, frame: npt.ArrayLike) -> None:
        payload = self._encoder.encode(frame)
        await self.send_message(proto.Audio(payload))
        self.frames_sent += 1

    async def send_message(self, message: proto.Message) -> None:
        try:
            match message:
                case proto.Audio(data=data):
                    data = self._protocol.send_audio(data)
                case proto.Control(action=action):
                    data = self._protocol.send_control(action)
                case proto.Ping():
                    data = self._protocol.send_ping()
                case _:
                    raise TypeError(f"A client sends audio, control and pings, not {message!r}.")
            await self._ws.send_bytes(data)
        except (ms.SessionStateError, ConnectionError, aiohttp.ClientError):
            raise SessionClosedError("The session has ended; no more audio can be sent.") from None

    async def events(self) -> AsyncIterator[Event]:
        """Yield what the server sends until the connection ends with a ClosedEvent."""
        while True:
            if self._drain is not None:
                # close() is reading what the server still sends; the end is all that is left.
                await asyncio.shield(self._drain)
            if self._protocol.closed is not None:
                yield self._closed_event()
                return
            self._receiving = True
            try:
                msg = await self._ws.receive()
            except asyncio.CancelledError:
                self._receiving = False
                if self._closing is not None and self._drain is None:
                    # close() left the server's close frame to this reader, which is going
                    # (cancelled, as when the app quits): read it in its place.
                    self._drain = asyncio.ensure_future(self._discard_until_closed())
                raise
            finally:
                self._receiving = False
            if msg.type is WSMsgType.TEXT:
                continue
            if msg.type is not WSMsgType.BINARY:
                await self._end_of(msg)
                continue  # the end is reported at the top, once
            for event in self._protocol.receive(msg.data, 0.0):
                async for out in self._translate(event):
                    yield out

    async def _translate(self, event: ms.Event) -> AsyncIterator[Event]:
        match event:
            case ms.Audio(data=data):
                try:
                    pcm = self._decoder.decode(data)
                except CodecError as exc:
                    # A decoder cannot resynchronise inside one stream: the session is over.
                    yield ErrorEvent(f"The audio stream from the server is corrupt: {exc}")
                    await self.close(CloseCode.INVALID_DATA, "invalid audio stream")
                    return
                if pcm.size:
                    self.samples_received += int(pcm.shape[0])
                    yield AudioEvent(pcm)
            case ms.Text(text=text):
                yield TextEvent(text)
            case ms.ServerError(message=text):
                yield ErrorEvent(text)
            case ms.Queued(data=data) | ms.Metadata(data=data):
                yield MetadataEvent(data)
            case ms.ProtocolViolation(sentence=sentence):
                yield ErrorEvent(f"The server sent a malformed message: {sentence}")

    def _closed_event(self) -> ClosedEvent:
        closed = self._protocol.closed
        assert closed is not None
        return ClosedEvent(closed.code, closed.reason)

    async def _end_of(self, msg: aiohttp.WSMessage) -> ms.Closed:
        """The socket has ended with ``msg``: record how, and finish aiohttp's side of it."""
        if msg.type is WSMsgType.CLOSE:
            code = int(msg.data) or CloseCode.NO_STATUS
            self._close_code = code
            closed = self._protocol.connection_closed(code, str(msg.extra or ""))
        elif msg.type is WSMsgType.ERROR and isinstance(msg.data, aiohttp.WebSocketError):
            # aiohttp has closed with the code that says what was wrong (1009: too big).
            self._close_code = msg.data.code
            closed = self._protocol.connection_closed(msg.data.code, str(msg.data))
        else:
            # Dropped without a close frame: the end we asked for if our close went out.
            self._close_code = CloseCode.ABNORMAL
            closed = self._protocol.connection_closed(
                *(self._sent_close or (None, "connection lost"))
            )
        # Answers the server's close frame. When the close was ours, the handshake is already
        # complete: aiohttp has no way to say so and writes a close frame of its own, which
        # the server, done with the connection, ignores.
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, TimeoutError):
            await self._ws.close()
        # Nothing is left to do on this connection: a caller that never calls close() after
        # the end leaks nothing.
        await self._http.close()
        self._ended.set()
        return closed

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close, and wait for the server's close frame.

        Messages the server still sends come before its close frame. When no events() reader
        takes them, they are discarded here: left unread, they fill the socket's queue, reading
        pauses, and the close frame waits behind them until the close timeout (10 s) ends the
        connection as if it were lost."""
        if self._closing is None:
            send = self._protocol.closed is None
            if send:
                self._protocol.close()
                self._sent_close = (int(code), reason)
                if not self._receiving:
                    # Started now: an events() call right after this one waits for it.
                    self._drain = asyncio.ensure_future(self._discard_until_closed())
            self._closing = asyncio.ensure_future(self._close(code, reason, send=send))
        await asyncio.shield(self._closing)

    async def _close(self, code: int, reason: str, *, send: bool) -> None:
        if send:
            try:
                await self._ws.send_frame(_close_payload(code, reason), WSMsgType.CLOSE)
            except (ConnectionError, aiohttp.ClientError):
                self._protocol.connection_closed(None, "connection lost")
                self._close_code = CloseCode.ABNORMAL
                self._ended.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._ended.wait()
        await self._release()

    async def _discard_until_closed(self) -> None:
        while self._protocol.closed is None:
            msg = await self._ws.receive()
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                await self._end_of(msg)

    async def _release(self) -> None:
        """Free the socket and its client session, whatever state they are in."""
        if self._drain is not None and not self._drain.done():
            # A drain still reading means the server never answered our close in time.
            await stop_task(self._drain)
        if self._protocol.closed is None:
            self._close_code = CloseCode.ABNORMAL
            self._protocol.connection_closed(*(self._sent_close or (None, "connection lost")))
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, TimeoutError):
            async with asyncio.timeout(RELEASE_TIMEOUT_S):
                await self._ws.close()
        self._ended.set()
        await self._http.close()

    @property
    def close_code(self) -> int | None:
        return self._close_code if self._protocol.closed is not None else None
