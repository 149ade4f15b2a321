"""The life of one Moshi connection as data: no sockets, no event loop, no clock.

Whoever owns the socket feeds every binary message it receives to ``receive()`` and sends the
bytes the methods here return; times are passed in. The rules of PROTOCOL.md live here once:
the server's 0x00 handshake is the first message, our gateway's queue and status metadata may
come before it (``pplex_status=1``), nothing but audio and control goes to the server, and no
audio before the handshake (PersonaPlex discards what it reads while preparing).

Client side (our client, the gateway towards a model server)::

    connecting -> awaiting handshake <-> queued -> open -> closing -> closed

Server side (the simulator)::

    preparing -> open -> closing -> closed

The handshake deadline runs from ``connected(now)``; it is paused while a queue message says the
caller is waiting for a model server, and starts again at a status message (a model server is
being connected to or is preparing), since the queue has its own limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeAlias

from pplex_desktop.moshi import protocol as proto

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # what aiohttp, and so both upstream servers, accept


class SessionStateError(RuntimeError):
    """The caller did something the session's state does not allow (a bug of the caller)."""


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    CONNECTING = "connecting"  # client: the socket is not open yet
    PREPARING = "preparing"  # server: the prompts are being read; input is discarded
    AWAITING_HANDSHAKE = "awaiting handshake"
    QUEUED = "queued"  # a gateway says we wait for a model server; the deadline is paused
    OPEN = "open"
    CLOSING = "closing"  # we asked to close; the peer's messages still count until its close
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Handshake:
    message: proto.Handshake
    raw: bytes  # as received, for a relay that forwards it unchanged


@dataclass(frozen=True, slots=True)
class Queued:
    position: int | None
    eta_s: float | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Metadata:
    data: Any


@dataclass(frozen=True, slots=True)
class Audio:
    data: bytes  # a slice of the peer's Ogg Opus stream


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class ServerError:
    message: str


@dataclass(frozen=True, slots=True)
class Control:
    action: proto.ControlAction


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """A message that breaks the protocol; it was dropped. ``sentence`` says what was wrong."""

    sentence: str


@dataclass(frozen=True, slots=True)
class Closed:
    code: int | None  # None when the connection dropped without a close frame
    reason: str


Event: TypeAlias = (
    Handshake
    | Queued
    | Metadata
    | Audio
    | Text
    | ServerError
    | Control
    | Ping
    | ProtocolViolation
    | Closed
)


def _number(value: object, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)


@dataclass
class MoshiProtocol:
    """One connection's protocol state, for ``role``. See the module's text for the states."""

    role: Role = Role.CLIENT
    handshake_timeout: float = 60.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    state: State = field(init=False)
    handshake: proto.Handshake | None = field(default=None, init=False)
    closed: Closed | None = field(default=None, init=False)
    _clock_from: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.handshake_timeout <= 0:
            raise ValueError("The handshake timeout must be a positive number of seconds.")
        self.state = State.CONNECTING if self.role is Role.CLIENT else State.PREPARING

    # -- the connection ----------------------------------------------------------------------

    def connected(self, now: float) -> None:
        """The socket is open (client side): the handshake clock starts at ``now``."""
        self._require(self.role is Role.CLIENT, "Only a client connects.")
        self._require(self.state is State.CONNECTING, "The session is already connected.")
        self.state = State.AWAITING_HANDSHAKE
        self._clock_from = now

    def deadline(self, now: float) -> float | None:
        """When the handshake is due, or None when no clock runs (queued, open, or a server)."""
        del now  # the deadline is fixed once set; ``now`` keeps the call's shape with expired()
        if self.state is not State.AWAITING_HANDSHAKE or self._clock_from is None:
            return None
        return self._clock_from + self.handshake_timeout

    def expired(self, now: float) -> bool:
        due = self.deadline(now)
        return due is not None and now >= due

    def remaining(self, now: float) -> float | None:
        """Seconds left for the handshake (never below 0), or None when no clock runs."""
        due = self.deadline(now)
        return None if due is None else max(0.0, due - now)

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    def close(self) -> None:
        """We start the closing handshake: what the peer still sends counts until its close."""
        if self.state is not State.CLOSED:
            self.state = State.CLOSING

    def connection_closed(self, code: int | None, reason: str) -> Closed:
        """The connection has ended (a close frame, or ``None`` for a dropped connection)."""
        if self.closed is None:
            if code is None and not reason:
                reason = "connection lost"
            self.closed = Closed(code, reason)
            self.state = State.CLOSED
        return self.closed

    # -- what arrives ------------------------------------------------------------------------

    def receive(self, message: bytes, now: float) -> list[Event]:
        """The events one binary message brings; bytes of any content never raise.

        Raises SessionStateError only when called before the socket is open or after it closed.
        """
        if self.state is State.CONNECTING:
            raise SessionStateError("A message cannot arrive before the socket is open.")
        if self.state is State.CLOSED:
            raise SessionStateError("A message cannot arrive after the connection has closed.")
        if len(message) > self.max_message_bytes:
            return [
                ProtocolViolation(
                    f"A message of {len(message)} bytes is over the limit of "
                    f"{self.max_message_bytes} bytes."
                )
            ]
        try:
            decoded = proto.decode(message)
        except proto.ProtocolError as exc:
            return [ProtocolViolation(str(exc))]
        if self.role is Role.SERVER:
            return self._server_receives(decoded)
        return self._client_receives(decoded, message, now)

    def _client_receives(self, message: proto.Message, raw: bytes, now: float) -> list[Event]:
        before = self.handshake is None
        match message:
            case proto.Handshake():
                if not before:
                    return [ProtocolViolation("The server sent a second handshake.")]
                self.handshake = message
                if self.state is not State.CLOSING:
                    self.state = State.OPEN
                return [Handshake(message, raw)]
            case proto.Metadata(data=data):
                return [self._metadata(data, now)]
            case proto.Error(message=text):
                return [ServerError(text)]
            case proto.Audio(data=data) if not before:
                return [Audio(data)]
            case proto.Text(text=text) if not before:
                return [Text(text)]
            case proto.Ping():
                return [Ping()]
            case proto.Control():
                return [ProtocolViolation("A server does not send control messages.")]
        return [
            ProtocolViolation(
                f"The server sent {type(message).__name__.lower()} before its handshake; "
                "the first message must be the handshake."
            )
        ]

    def _metadata(self, data: Any, now: float) -> Event:
        kind = data.get("type") if isinstance(data, dict) else None
        if self.state in (State.AWAITING_HANDSHAKE, State.QUEUED):
            if kind == "queue":
                self.state = State.QUEUED
            elif kind == "status":
                self.state = State.AWAITING_HANDSHAKE
                self._clock_from = now
        if kind == "queue" and isinstance(data, dict):
            return Queued(
                _number(data.get("position"), int), _number(data.get("eta_s"), float), data
            )
        return Metadata(data)

    def _server_receives(self, message: proto.Message) -> list[Event]:
        if self.state is State.PREPARING:
            return []  # read and discarded, as PersonaPlex does while it reads its prompts
        match message:
            case proto.Audio(data=data):
                return [Audio(data)]
            case proto.Control(action=action):
                return [Control(action)]
            case proto.Ping():
                return [Ping()]
        name = type(message).__name__.lower()
        return [ProtocolViolation(f"A client does not send {name} messages.")]

    # -- what we send ------------------------------------------------------------------------

    def send_handshake(self, message: proto.Handshake | None = None) -> bytes:
        """The server says it is ready; from now on the client's audio counts."""
        self._require(self.role is Role.SERVER, "Only the server sends the handshake.")
        self._require(self.state is State.PREPARING, "The handshake is sent once, first.")
        self.state = State.OPEN
        self.handshake = message or proto.Handshake()
        return proto.encode(self.handshake)

    def send_audio(self, opus: bytes) -> bytes:
        self._require_open("audio")
        return b"\x01" + opus

    def send_control(self, action: proto.ControlAction) -> bytes:
        self._require(self.role is Role.CLIENT, "Only a client sends control messages.")
        self._require_open("a control message")
        return proto.encode(proto.Control(action))

    def send_ping(self) -> bytes:
        """Either side may ping; both servers log and skip it."""
        self._require_open("ping")
        return proto.encode(proto.Ping())

    def send_text(self, text: str) -> bytes:
        self._require(self.role is Role.SERVER, "Only the server sends text.")
        self._require_open("text")
        return proto.encode(proto.Text(text))

    def send_error(self, message: str) -> bytes:
        self._require(self.role is Role.SERVER, "Only the server sends errors.")
        self._require_open("an error")
        return proto.encode(proto.Error(message))

    def send_metadata(self, data: Any) -> bytes:
        self._require(self.role is Role.SERVER, "Only the server sends metadata.")
        json.dumps(data)  # refuses what could not be encoded before any state is touched
        self._require_open("metadata")
        return proto.encode(proto.Metadata(data))

    def _require_open(self, what: str) -> None:
        if self.state is not State.OPEN:
            raise SessionStateError(
                f"No {what} can be sent while the session is {self.state.value}; "
                "only between the handshake and the close."
            )

    @staticmethod
    def _require(condition: bool, sentence: str) -> None:
        if not condition:
            raise SessionStateError(sentence)
