"""What a model server says during a live session, decoded for the endpoints that re-encode it.

/ws/stream and /v1/realtime both turn the model's Opus into PCM of their own; /api/chat passes
its bytes through and does not use this. The stream ends by raising the session's SessionEnd:
the model server's close, or its corrupt audio.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import WSMsgType

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.gateway.live.relay import SessionEnd
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import SAMPLE_RATE, CodecError, OpusDecoder, Pcm

if TYPE_CHECKING:
    from pplex_desktop.gateway.live.relay import Relay

_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


@dataclass(frozen=True, slots=True)
class ModelAudio:
    """One audio message; ``pcm`` is empty while the decoder still fills its first page."""

    pcm: Pcm
    seconds: float


@dataclass(frozen=True, slots=True)
class ModelText:
    text: str


@dataclass(frozen=True, slots=True)
class ModelError:
    message: str


ModelEvent = ModelAudio | ModelText | ModelError


async def model_events(relay: Relay) -> AsyncGenerator[ModelEvent]:
    """The model server's messages on ``relay``'s backend socket, decoded; audio it sends is
    accounted to the session before it is yielded."""
    backend_ws = relay.backend_ws
    assert backend_ws is not None
    decoder = OpusDecoder()
    while True:
        msg = await backend_ws.receive()
        if msg.type in _CLOSING:
            raise relay.backend_closed(msg)
        if msg.type is not WSMsgType.BINARY or not msg.data:
            continue
        try:
            message = proto.decode(bytes(msg.data))
        except proto.ProtocolError:
            continue  # a kind of message this gateway does not know: the model goes on
        if isinstance(message, proto.Audio):
            try:
                pcm = decoder.decode(message.data)
            except CodecError as exc:
                raise SessionEnd(
                    CloseCode.BACKEND_ERROR,
                    f"The model server's audio is corrupt: {exc}",
                    "backend_failed",
                    backend_failed="corrupt audio stream",
                ) from None
            seconds = pcm.shape[0] / SAMPLE_RATE
            relay.backend_audio(seconds)
            yield ModelAudio(pcm, seconds)
        elif isinstance(message, proto.Text):
            yield ModelText(message.text)
        elif isinstance(message, proto.Error):
            yield ModelError(message.message)
