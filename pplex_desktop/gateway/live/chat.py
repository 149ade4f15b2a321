"""/api/chat: the native Moshi/PersonaPlex protocol, relayed byte for byte.

Existing clients work unchanged. Callers that add ``pplex_status=1`` also receive metadata
messages (kind 0x04) about their queue position and the session's state before the handshake;
others wait in silence, as they would at the model server itself.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.gateway.live.relay import Relay, SessionEnd
from pplex_desktop.gateway.pool.scheduler import QueueUpdate
from pplex_desktop.moshi.opuscheck import OggOpusChecker, StreamError
from pplex_desktop.moshi.opusclock import OggOpusDuration

_AUDIO = 0x01
_META = b"\x04"


class NativeRelay(Relay):
    route = "/api/chat"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._up_check = OggOpusChecker()

    def _meta(self, payload: dict[str, object]) -> None:
        if self.params.status_updates:
            self.send(_META + json.dumps(payload, separators=(",", ":")).encode())

    def on_queue(self, update: QueueUpdate) -> None:
        self._meta({"type": "queue", "position": update.position, "eta_s": update.eta_s})

    def on_status(self, state: str) -> None:
        self._meta({"type": "status", "state": state})

    def on_ready(self, handshake: bytes) -> None:
        self.send(handshake)

    async def early_message(self, data: bytes) -> None:
        # The native stream must arrive whole (its first message holds the Ogg headers), so
        # what came before the handshake is forwarded now rather than dropped.
        await self.forward_up(data)

    async def forward_up(self, data: bytes) -> None:
        assert self.backend_ws is not None
        if data[:1] == b"\x01":
            # Corrupt audio ends the model server's session (Kyutai drops the connection as if
            # it had crashed): it is refused here, and the model server never sees it.
            try:
                seconds = self._up_check.feed(data[1:])
            except StreamError as exc:
                raise SessionEnd(
                    CloseCode.INVALID_DATA, f"{exc} It was not forwarded.", "invalid_audio"
                ) from None
            self.client_audio(seconds)
        await self.backend_ws.send_bytes(data)

    async def pump_down(self) -> None:
        backend_ws = self.backend_ws
        assert backend_ws is not None
        clock = OggOpusDuration()
        while True:
            msg = await backend_ws.receive()
            if msg.type is WSMsgType.BINARY:
                data: bytes = msg.data
                seconds = clock.feed(data[1:]) if data[:1] == b"\x01" else 0.0
                self.backend_audio(seconds)
                await self.deliver(data, seconds)
            elif msg.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                raise self.backend_closed(msg)

    async def on_end(self, end: SessionEnd) -> None:
        self._meta({"type": "end", "reason": end.reason, "message": end.message})
