"""Sans-I/O encoding of the Moshi / PersonaPlex WebSocket messages.

Every message is binary: one kind byte, then the payload (see PROTOCOL.md). Nothing here does
I/O, so the client, the simulated backend and the gateway share one definition of the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias


class ProtocolError(ValueError):
    """Bytes that are not a valid Moshi message."""


class Kind(IntEnum):
    HANDSHAKE = 0x00
    AUDIO = 0x01
    TEXT = 0x02
    CONTROL = 0x03
    METADATA = 0x04
    ERROR = 0x05
    PING = 0x06


class ControlAction(IntEnum):
    START = 0
    END_TURN = 1
    PAUSE = 2
    RESTART = 3


@dataclass(frozen=True, slots=True)
class Handshake:
    """Servers send the bare kind byte; the web client's encoder adds version and model."""

    version: int | None = None
    model: int | None = None

    def __post_init__(self) -> None:
        if self.model is not None and self.version is None:
            raise ValueError("A handshake with a model byte needs a version byte too.")
        for value in (self.version, self.model):
            if value is not None and not 0 <= value <= 255:
                raise ValueError("Handshake version and model are single bytes.")


@dataclass(frozen=True, slots=True)
class Audio:
    """A slice of a continuous Ogg Opus stream, not necessarily a whole page."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Control:
    action: ControlAction


@dataclass(frozen=True, slots=True)
class Metadata:
    data: Any


@dataclass(frozen=True, slots=True)
class Error:
    message: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


Message: TypeAlias = Handshake | Audio | Text | Control | Metadata | Error | Ping


def peek_kind(data: bytes) -> Kind:
    """Return the kind of a raw message without decoding its payload."""
    if not data:
        raise ProtocolError("The message is empty; every Moshi message starts with a kind byte.")
    try:
        return Kind(data[0])
    except ValueError:
        raise ProtocolError(f"The message kind 0x{data[0]:02x} is not a Moshi kind.") from None


def encode(message: Message) -> bytes:
    match message:
        case Audio(data=data):
            return b"\x01" + data
        case Text(text=text):
            return b"\x02" + text.encode("utf-8")
        case Handshake(version=None):
            return b"\x00"
        case Handshake(version=int(version), model=None):
            return bytes((0, version))
        case Handshake(version=int(version), model=int(model)):
            return bytes((0, version, model))
        case Control(action=action):
            return bytes((Kind.CONTROL, int(action)))
        case Metadata(data=data):
            return b"\x04" + json.dumps(data, separators=(",", ":")).encode("utf-8")
        case Error(message=text):
            return b"\x05" + text.encode("utf-8")
        case Ping():
            return b"\x06"
    raise TypeError(f"Cannot encode {message!r}: it is not a Moshi message.")


def _utf8(payload: bytes, what: str) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"The {what} message is not valid UTF-8: {exc.reason}.") from None


def decode(data: bytes) -> Message:
    kind = peek_kind(data)
    payload = data[1:]
    if kind is Kind.AUDIO:
        return Audio(bytes(payload))
    if kind is Kind.TEXT:
        return Text(_utf8(payload, "text"))
    if kind is Kind.HANDSHAKE:
        if not payload:
            return Handshake()
        if len(payload) == 1:
            return Handshake(payload[0])
        return Handshake(payload[0], payload[1])
    if kind is Kind.CONTROL:
        if len(payload) != 1:
            raise ProtocolError("A control message carries exactly one action byte.")
        try:
            return Control(ControlAction(payload[0]))
        except ValueError:
            raise ProtocolError(f"The control action {payload[0]} is unknown.") from None
    if kind is Kind.METADATA:
        text = _utf8(payload, "metadata")
        try:
            return Metadata(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"The metadata message is not valid JSON: {exc.msg}.") from None
        except (ValueError, RecursionError):
            # Over-long integers and absurd nesting are refused by the json module itself.
            raise ProtocolError("The metadata message holds JSON too large to read.") from None
    if kind is Kind.ERROR:
        return Error(_utf8(payload, "error"))
    return Ping()
