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
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.protocol import State

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.redact import redact_url
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import CodecError, OpusDecoder, OpusEncoder, Pcm
from pplex_desktop.moshi.framing import Framer

_log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # what aiohttp, and so both upstream servers, accept


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


def _refusal_message(exc: InvalidStatus) -> str:
    status = exc.response.status_code
    body = exc.response.body or b""
    try:
        message = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = body.decode("utf-8", "replace").strip()[:200] or exc.response.reason_phrase
    return f"The server refused the connection with HTTP {status}: {message}"


class MoshiSession:
    """One conversation. Use ``async with await MoshiSession.connect(...)``."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self.url = url
        self._encoder = OpusEncoder()
        self._decoder = OpusDecoder()
        self._framer = Framer()
        self.handshake: proto.Handshake | None = None
        self.frames_sent = 0
        self.samples_received = 0
        self.http_status: int | None = None
        self._closed_event: ClosedEvent | None = None
        self._receiving = False  # an events() reader is waiting for the next message
        self._drain: asyncio.Task[None] | None = None

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
        headers: dict[str, str] = {}
        if options.api_key is not None and not options.key_in_query:
            headers["X-API-Key"] = options.api_key
        try:
            ws = await connect(
                full_url,
                additional_headers=headers,
                open_timeout=options.open_timeout,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                proxy=None,
                ssl=options.ssl_context if full_url.startswith("wss:") else None,
                origin=options.origin,  # type: ignore[arg-type]
                user_agent_header="pplex-desktop",
            )
        except InvalidStatus as exc:
            raise ConnectError(_refusal_message(exc), status=exc.response.status_code) from None
        except InvalidURI:
            raise ConnectError(f"'{safe_url}' is not a valid WebSocket address.") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ConnectError(
                f"Could not connect to {safe_url}: {exc or type(exc).__name__}."
            ) from None
        session = cls(ws, safe_url)
        try:
            async with asyncio.timeout(options.handshake_timeout) as deadline:
                await session._await_handshake(on_metadata, deadline, options.handshake_timeout)
        except TimeoutError:
            await ws.close(1000, "handshake timeout")
            raise HandshakeError(
                f"{safe_url} accepted the connection but sent no handshake within "
                f"{options.handshake_timeout:g} s; the model server may be busy or stuck."
            ) from None
        except BaseException:
            await ws.close(1000)
            raise
        _log.info("Connected to %s.", safe_url)
        return session

    async def _await_handshake(
        self,
        on_metadata: Callable[[Any], None] | None,
        deadline: asyncio.Timeout,
        handshake_timeout: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                raw = await self._ws.recv()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                reason = exc.rcvd.reason if exc.rcvd else ""
                detail = f" (close code {code}: {reason})" if code else ""
                raise HandshakeError(
                    f"The server closed the connection before the handshake{detail}. "
                    "A PersonaPlex server does this when the voice or text prompt is missing "
                    "or refused."
                ) from None
            if isinstance(raw, str):
                continue
            try:
                message = proto.decode(raw)
            except proto.ProtocolError as exc:
                _log.warning("Ignoring a malformed message before the handshake: %s", exc)
                continue
            if isinstance(message, proto.Handshake):
                self.handshake = message
                return
            if isinstance(message, proto.Error):
                raise HandshakeError(f"The server reported an error: {message.message}")
            if isinstance(message, proto.Metadata):
                # While our gateway says we are queued, the wait is its business (it has its
                # own limit); the handshake clock starts once a model server is preparing.
                kind = message.data.get("type") if isinstance(message.data, dict) else None
                if kind == "queue":
                    deadline.reschedule(None)
                elif kind == "status":
                    deadline.reschedule(loop.time() + handshake_timeout)
                if on_metadata is not None:
                    on_metadata(message.data)

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
            await self._ws.send(proto.encode(message))
        except ConnectionClosed:
            raise SessionClosedError("The session has ended; no more audio can be sent.") from None

    async def events(self) -> AsyncIterator[Event]:
        """Yield what the server sends until the connection ends with a ClosedEvent."""
        while True:
            if self._drain is not None:
                # close() is reading what the server still sends; the end is all that is left.
                await asyncio.shield(self._drain)
            self._receiving = True
            try:
                raw = await self._ws.recv()
            except ConnectionClosed as exc:
                yield self._closed(exc)
                return
            finally:
                self._receiving = False
            if isinstance(raw, str):
                continue
            try:
                message = proto.decode(raw)
            except proto.ProtocolError as exc:
                yield ErrorEvent(f"The server sent a malformed message: {exc}")
                continue
            if isinstance(message, proto.Audio):
                try:
                    pcm = self._decoder.decode(message.data)
                except CodecError as exc:
                    # A decoder cannot resynchronise inside one stream: the session is over.
                    yield ErrorEvent(f"The audio stream from the server is corrupt: {exc}")
                    await self.close(1007, "invalid audio stream")
                    continue
                if pcm.size:
                    self.samples_received += int(pcm.shape[0])
                    yield AudioEvent(pcm)
            elif isinstance(message, proto.Text):
                yield TextEvent(message.text)
            elif isinstance(message, proto.Error):
                yield ErrorEvent(message.message)
            elif isinstance(message, proto.Metadata):
                yield MetadataEvent(message.data)

    def _closed(self, exc: ConnectionClosed) -> ClosedEvent:
        if self._closed_event is None:
            frame = exc.rcvd or exc.sent
            self._closed_event = ClosedEvent(
                frame.code if frame else None, frame.reason if frame else "connection lost"
            )
        return self._closed_event

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close, and wait for the server's close frame.

        Messages the server still sends come before its close frame. When no events() reader
        takes them, they are discarded here: left unread, they fill the socket's queue, reading
        pauses, and the close frame waits behind them until the close timeout (10 s) ends the
        connection as if it were lost."""
        if self._receiving or self._ws.state is State.CLOSED:
            await self._ws.close(code, reason)
            return
        closing = asyncio.ensure_future(self._ws.close(code, reason))
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._discard_until_closed())
        await asyncio.gather(closing, asyncio.shield(self._drain))

    async def _discard_until_closed(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self._ws.recv()

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code
