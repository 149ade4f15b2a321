"""/ws/stream: the original gateway's simple protocol, for clients without an Opus codec.

The client sends raw 24 kHz mono PCM (s16le by default, ``?format=f32le``) as binary messages of
any size and receives PCM back, plus JSON text messages: queue, ready, text, error and end. The
gateway encodes and decodes Opus itself. Audio sent before ``ready`` is discarded, as the model
would otherwise answer stale speech.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping

import numpy as np
from aiohttp import web

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.errors import ValidationError
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.live.model_stream import ModelAudio, ModelText, model_events
from pplex_desktop.gateway.live.params import SessionParams
from pplex_desktop.gateway.live.relay import Relay, SessionEnd
from pplex_desktop.gateway.live.sessions import LiveSession
from pplex_desktop.gateway.pool.scheduler import QueueUpdate
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import SAMPLE_RATE, OpusEncoder, Pcm
from pplex_desktop.moshi.framing import Framer

FORMATS: dict[str, np.dtype[np.generic]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


def parse_format(query: Mapping[str, str]) -> str:
    fmt = query.get("format", "s16le").lower()
    if fmt not in FORMATS:
        raise ValidationError(
            f"format must be s16le or f32le, not {fmt[:20]!r}.", code="invalid_format"
        )
    return fmt


def _json(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class PcmRelay(Relay):
    route = "/ws/stream"

    def __init__(
        self,
        request: web.Request,
        ctx: GatewayContext,
        params: SessionParams,
        session: LiveSession,
        ws: web.WebSocketResponse,
        *,
        pcm_format: str = "s16le",
    ) -> None:
        super().__init__(request, ctx, params, session, ws)
        self.dtype = FORMATS[pcm_format]
        self._carry = b""
        self._framer = Framer()
        self._encoder = OpusEncoder()

    def on_queue(self, update: QueueUpdate) -> None:
        self.send(_json({"type": "queue", "position": update.position, "eta_s": update.eta_s}))

    def on_status(self, state: str) -> None:
        del state  # the simple protocol only announces "ready"

    def on_ready(self, handshake: bytes) -> None:
        del handshake
        self.send(_json({"type": "ready"}))

    async def early_message(self, data: bytes) -> None:
        del data  # anything the client sent while it waited is stale by now

    def _to_float(self, data: bytes) -> Pcm:
        data = self._carry + data
        usable = len(data) - len(data) % self.dtype.itemsize
        self._carry = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=self.dtype).astype(np.float32)
        if self.dtype.kind == "i":
            return np.asarray(samples / np.float32(32768.0), dtype=np.float32)
        return np.asarray(
            np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), dtype=np.float32
        )

    def _to_bytes(self, pcm: Pcm) -> bytes:
        if self.dtype.kind == "i":
            return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return pcm.astype("<f4").tobytes()

    async def forward_up(self, data: bytes) -> None:
        assert self.backend_ws is not None
        pcm = self._to_float(data)
        self.client_audio(pcm.shape[0] / SAMPLE_RATE)
        for frame in self._framer.push(pcm):
            payload = self._encoder.encode(frame)
            await self.backend_ws.send_bytes(proto.encode(proto.Audio(payload)))

    async def pump_down(self) -> None:
        async with contextlib.aclosing(model_events(self)) as events:
            async for item in events:
                if isinstance(item, ModelAudio):
                    if item.pcm.size:
                        await self.deliver(self._to_bytes(item.pcm), item.seconds)
                elif isinstance(item, ModelText):
                    await self.deliver(_json({"type": "text", "text": item.text}))
                else:
                    await self.deliver(
                        _json({"type": "error", "code": "model_error", "message": item.message})
                    )

    async def on_end(self, end: SessionEnd) -> None:
        if end.code != CloseCode.NORMAL:
            self.send(_json({"type": "error", "code": end.reason, "message": end.message}))
        self.send(_json({"type": "end", "reason": end.reason, "message": end.message}))

    def on_client_text(self, text: str) -> None:
        del text  # reserved for control messages; ignored for now
