"""/v1/realtime: the OpenAI Realtime API in front of PersonaPlex / Moshi model servers.

What a full-duplex model can honour, and how (README, "Voice agents"):
- The backend slot is taken at the first ``input_audio_buffer.append`` (or ``response.create``);
  until then ``session.update`` may set the persona (``instructions``), the voice and the
  formats freely. Once the model is live its prompt is fixed, so changing the persona or voice
  is refused with an ``error`` event (``session_locked``) and the call goes on.
- Input is re-framed to the model's 80 ms frames; when the client falls behind, the gateway
  fills silence so the model keeps its clock, as push-to-talk does.
- Output comes as responses: one for the whole call (``continuous``) or one per spoken
  segment, cut where the model falls silent (``turns``, the default, for turn-based clients).
  ``response.cancel`` mutes the model until it next falls silent: it cannot be stopped
  mid-thought.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.errors import PplexError, ValidationError
from pplex_desktop.core.keystore import ApiKey
from pplex_desktop.core.voices import display_name
from pplex_desktop.gateway.context import API_KEY, CTX, GatewayContext
from pplex_desktop.gateway.edge.proxies import client_address
from pplex_desktop.gateway.live.model_stream import ModelAudio, ModelText, model_events
from pplex_desktop.gateway.live.params import SessionParams, parse_session_params
from pplex_desktop.gateway.live.realtime_session import (
    EventError,
    RealtimeConfig,
    Response,
    apply_update,
    audio_delta,
    closing_events,
    error_event,
    event,
    locked_change,
    new_id,
    opening_events,
    parse_model,
    session_object,
    transcript_delta,
)
from pplex_desktop.gateway.live.relay import Relay, SessionEnd, close_reason, make_client_socket
from pplex_desktop.gateway.live.sessions import LiveSession
from pplex_desktop.gateway.pool.scheduler import QueueUpdate
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import (
    FRAME_SAMPLES,
    FRAME_SECONDS,
    SAMPLE_RATE,
    OpusEncoder,
    Pcm,
)
from pplex_desktop.moshi.framing import Framer
from pplex_desktop.moshi.g711 import G711Decoder, G711Encoder

_log = logging.getLogger(__name__)
routes = web.RouteTableDef()
ROUTE = "/v1/realtime"
SUBPROTOCOL = "realtime"
# A frame may go to the model this far ahead of its clock (bursty clients), and the client may
# fall this far behind before silence is filled in (network jitter).
AHEAD_FRAMES = 3
SLACK_FRAMES = 2
# Silence is only filled while the model keeps up: a model server slower than real time would
# otherwise pile up frames it must still answer when the call ends.
MAX_BACKLOG_FRAMES = 3
SPEECH_RMS = 0.004  # about -48 dBFS: above it the model is speaking
MAX_PENDING_TEXT = 2_000
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)
Decode = Callable[[bytes], Pcm]
Encode = Callable[[Pcm], bytes]


def _pcm16_decoder() -> Decode:
    carry = b""

    def decode(data: bytes) -> Pcm:
        nonlocal carry
        data = carry + data
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        ints = np.frombuffer(data[:usable], dtype="<i2")
        return np.asarray(ints.astype(np.float32) / np.float32(32768.0), dtype=np.float32)

    return decode


def _pcm16_encode(pcm: Pcm) -> bytes:
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def make_decoder(fmt: str) -> Decode:
    if fmt == "audio/pcmu":
        return G711Decoder("pcmu").decode
    if fmt == "audio/pcma":
        return G711Decoder("pcma").decode
    return _pcm16_decoder()


def make_encoder(fmt: str) -> Encode:
    if fmt == "audio/pcmu":
        return G711Encoder("pcmu").encode
    if fmt == "audio/pcma":
        return G711Encoder("pcma").encode
    return _pcm16_encode


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class RealtimeRelay(Relay):
    route = ROUTE

    def __init__(
        self,
        request: web.Request,
        ctx: GatewayContext,
        params: SessionParams,
        session: LiveSession,
        ws: web.WebSocketResponse,
        *,
        config: RealtimeConfig,
        key: ApiKey,
    ) -> None:
        super().__init__(request, ctx, params, session, ws)
        self.config = config
        self.key = key
        self.session_id = new_id("sess")
        self._query = dict(request.query)
        self._decode_in = make_decoder(config.input_format)
        self._encode_out = make_encoder(config.output_format)
        self._framer = Framer()
        self._frames: deque[Pcm] = deque()
        self._frames_sent = 0
        self._frames_answered = 0  # audio messages the model sent back
        self.silence_frames = 0
        self._input_ready = self.loop.create_future()
        self._encoder = OpusEncoder()
        self._response: Response | None = None
        self._muted = False
        self._quiet_s = 0.0
        self._input_since_response_s = 0.0
        self._pending_text: list[str] = []  # words heard between turns, for the next response
        self._started = False

    # -- sending ----------------------------------------------------------------------------

    def emit(self, payload: dict[str, Any], audio_s: float = 0.0) -> None:
        self.send(_dump(payload), audio_s)

    async def _emit_now(self, payload: dict[str, Any]) -> None:
        """Before the relay's writer runs (the configuration phase), send directly."""
        await self.ws.send_str(_dump(payload))

    def _session_event(self, kind: str) -> dict[str, Any]:
        return event(
            kind,
            session=session_object(
                self.config, self.session_id, self.params.text_prompt, self.voice_name
            ),
        )

    @property
    def voice_name(self) -> str:
        return display_name(self.params.voice)  # NATF2, or narrator.wav for a WAV voice

    def _rate_limits(self) -> dict[str, Any]:
        decision = self.ctx.limiter.peek(self.key.id, self.key.rpm)
        active = sum(1 for s in self.ctx.sessions.sessions.values() if s.key_id == self.key.id)
        return event(
            "rate_limits.updated",
            rate_limits=[
                {
                    "name": "requests",
                    "limit": decision.limit,
                    "remaining": decision.remaining,
                    "reset_seconds": round(decision.reset_s, 1),
                },
                {
                    "name": "sessions",
                    "limit": self.key.max_sessions,
                    "remaining": max(0, self.key.max_sessions - active),
                    "reset_seconds": 0,
                },
            ],
        )

    # -- configuring, before a model server is asked for ------------------------------------

    def _params_for(self, config: RealtimeConfig) -> SessionParams:
        query = dict(self._query)
        if config.instructions is not None:
            query["text_prompt"] = config.instructions
        if config.voice is not None:
            query["voice_prompt"] = config.voice
        for alias in ("persona", "voice"):
            if alias in query and (
                (alias == "persona" and config.instructions is not None)
                or (alias == "voice" and config.voice is not None)
            ):
                del query[alias]
        return parse_session_params(query, self.ctx.settings, self.ctx.backends.voices())

    def _update(self, payload: dict[str, Any]) -> None:
        wanted = apply_update(self.config, payload.get("session"))
        if self._started:
            locked = locked_change(self.config, wanted)
            if locked is not None:
                raise EventError(
                    f"The {locked} cannot change once the model is live: it was prompted with "
                    "them when the conversation started. Reconnect to use another persona or "
                    "voice.",
                    code="session_locked",
                    param=f"session.{locked}",
                )
        try:
            params = self._params_for(wanted)
        except ValidationError as exc:
            raise EventError(exc.message, code=exc.code, param="session") from None
        if wanted.input_format != self.config.input_format:
            self._decode_in = make_decoder(wanted.input_format)
        if wanted.output_format != self.config.output_format:
            self._encode_out = make_encoder(wanted.output_format)
        self.config, self.params = wanted, params

    async def configure(self) -> bool:
        """Answer events until the client sends audio; False if it left before."""
        await self._emit_now(self._session_event("session.created"))
        await self._emit_now(self._rate_limits())
        idle = self.ctx.settings.idle_timeout_s
        while True:
            try:
                msg = await self._race(self.ws.receive(timeout=idle))
            except TimeoutError:
                raise SessionEnd(
                    CloseCode.POLICY, f"No event arrived for {idle:g} s after connecting.", "idle"
                ) from None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return False
            if msg.type is WSMsgType.ERROR:
                return False
            if msg.type is WSMsgType.BINARY:
                await self._emit_now(self._binary_refused())
                continue
            if msg.type is not WSMsgType.TEXT:
                continue
            start = False
            for reply in self._handle(str(msg.data), configuring=True):
                if reply is None:
                    start = True
                else:
                    await self._emit_now(reply)
            if start:
                return True

    # -- client events ----------------------------------------------------------------------

    def _handle(self, text: str, *, configuring: bool) -> list[dict[str, Any] | None]:
        """What to send back for one client event; None in the list means: start the model."""
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            return [error_event("invalid_json", "The event is not valid JSON.")]
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            return [error_event("invalid_event", "An event must be a JSON object with a type.")]
        kind: str = payload["type"]
        event_id = payload.get("event_id") if isinstance(payload.get("event_id"), str) else None
        try:
            return self._dispatch(kind, payload, configuring=configuring)
        except EventError as exc:
            return [error_event(exc.code, exc.message, param=exc.param, event_id=event_id)]

    def _dispatch(
        self, kind: str, payload: dict[str, Any], *, configuring: bool
    ) -> list[dict[str, Any] | None]:
        if kind == "input_audio_buffer.append":
            if configuring:
                self._decode_audio(payload)  # refused here if it is not base64
                return [None]
            self._append(payload)
            return []
        if kind == "session.update":
            self._update(payload)
            return [self._session_event("session.updated")]
        if kind == "input_audio_buffer.commit":
            return [
                event("input_audio_buffer.committed", previous_item_id=None, item_id=new_id("item"))
            ]
        if kind == "input_audio_buffer.clear":
            self._framer = Framer()
            self._frames.clear()
            return [event("input_audio_buffer.cleared")]
        if kind == "response.create":
            # The model talks by itself; asking for a response only starts it, if not yet.
            return [None] if configuring else []
        if kind in ("response.cancel", "output_audio_buffer.clear"):
            self._cancel_output()
            return []
        if kind.startswith("conversation.item."):
            raise EventError(
                "PersonaPlex listens to audio only: conversation items (text messages, "
                "function results) are not supported; set the persona with "
                "session.update instructions.",
                code="unsupported_event",
            )
        shown = kind[:60].encode("ascii", "replace").decode()
        raise EventError(
            f"The event type {shown!r} is not one this endpoint knows.", code="unknown_event"
        )

    def _binary_refused(self) -> dict[str, Any]:
        return error_event(
            "binary_not_supported",
            "Send audio as input_audio_buffer.append events with base64 audio; binary "
            "messages are not part of the Realtime API.",
        )

    def _decode_audio(self, payload: dict[str, Any]) -> bytes:
        audio = payload.get("audio")
        if not isinstance(audio, str):
            raise EventError(
                "input_audio_buffer.append needs audio as a base64 string.",
                code="invalid_value",
                param="audio",
            )
        try:
            return base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError(
                "The audio is not valid base64.", code="invalid_value", param="audio"
            ) from None

    def _append(self, payload: dict[str, Any]) -> None:
        raw = self._decode_audio(payload)
        if not self._live:
            return  # stale by the time the model is ready, as on /ws/stream
        pcm = self._decode_in(raw)
        seconds = pcm.shape[0] / SAMPLE_RATE
        self.client_audio(seconds)  # raises SessionEnd when faster than real time
        self._input_since_response_s += seconds
        self._frames.extend(self._framer.push(pcm))
        if self._frames and not self._input_ready.done():
            self._input_ready.set_result(None)

    def on_client_text(self, text: str) -> None:
        for reply in self._handle(text, configuring=False):
            if reply is not None:
                self.emit(reply)

    async def early_message(self, data: bytes) -> None:
        del data
        self.emit(self._binary_refused())

    async def forward_up(self, data: bytes) -> None:
        del data
        self.emit(self._binary_refused())

    # -- the model's clock ------------------------------------------------------------------

    async def _pace(self) -> None:
        """Send the client's frames as they come, and silence when it falls behind."""
        backend_ws = self.backend_ws
        assert backend_ws is not None
        while True:
            due = (self.loop.time() - self.live_since) / FRAME_SECONDS
            frame: Pcm | None = None
            if self._frames and self._frames_sent < due + AHEAD_FRAMES:
                frame = self._frames.popleft()
            elif (
                self._frames_sent < due - SLACK_FRAMES
                and self._frames_sent - self._frames_answered < MAX_BACKLOG_FRAMES
            ):
                frame = _SILENCE
                self.silence_frames += 1
            if frame is None:
                # Sleep until the next frame is allowed (ahead) or silence is due (behind);
                # new audio from the client wakes us early.
                wake = (
                    self._frames_sent - AHEAD_FRAMES
                    if self._frames
                    else self._frames_sent + SLACK_FRAMES
                )
                delay = max(0.0, self.live_since + wake * FRAME_SECONDS - self.loop.time())
                if not delay:  # silence is due but the model lags: its next answer wakes us
                    delay = FRAME_SECONDS
                waiter = self._input_ready = self.loop.create_future()
                handle = self.loop.call_later(delay + 0.001, self._wake, waiter)
                try:
                    await waiter
                finally:
                    handle.cancel()
                continue
            try:
                await backend_ws.send_bytes(proto.encode(proto.Audio(self._encoder.encode(frame))))
            except ConnectionError:
                raise self.backend_lost() from None
            self._frames_sent += 1
            self.session.messages_up += 1

    @staticmethod
    def _wake(waiter: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)

    # -- the model's answer -----------------------------------------------------------------

    def _open(self) -> Response:
        response = self._response = Response()
        for payload in opening_events(response, self.config, self.voice_name):
            self.emit(payload)
        pending, self._pending_text = self._pending_text, []
        for text in pending:
            response.transcript.append(text)
            self.emit(transcript_delta(response, text))
        return response

    def _close(self, status: str, details: Any = None) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        response.usage.input_s = self._input_since_response_s
        self._input_since_response_s = 0.0
        for payload in closing_events(response, self.config, self.voice_name, status, details):
            self.emit(payload)
        self.emit(self._rate_limits())

    def _cancel_output(self) -> None:
        self._muted = True
        self._quiet_s = 0.0
        if self.config.response_mode == "turns":
            self._close("cancelled", {"type": "cancelled", "reason": "client_cancelled"})

    def _model_audio(self, pcm: Pcm, seconds: float) -> None:
        loud = bool(pcm.size) and float(np.sqrt(np.mean(np.square(pcm)))) > SPEECH_RMS
        self._quiet_s = 0.0 if loud else self._quiet_s + seconds
        silent_long = self._quiet_s * 1000.0 >= self.config.silence_ms
        if self._muted:
            if silent_long:
                self._muted = False
            return
        response = self._response
        if response is None:
            if not loud:
                return  # between turns: nothing is said
            response = self._open()
        response.usage.output_s += seconds
        delta = base64.b64encode(self._encode_out(pcm)).decode("ascii")
        self.emit(audio_delta(response, delta), seconds)
        if self.config.response_mode == "turns" and silent_long:
            self._close("completed")

    def _model_text(self, text: str) -> None:
        if self._muted:
            return
        response = self._response
        if response is None:
            # Text leads the model's audio a little; it joins the turn its speech opens.
            if sum(map(len, self._pending_text)) < MAX_PENDING_TEXT:
                self._pending_text.append(text)
            return
        response.transcript.append(text)
        self.emit(transcript_delta(response, text))

    async def pump_down(self) -> None:
        async with contextlib.aclosing(model_events(self)) as events:
            async for item in events:
                if isinstance(item, ModelAudio):
                    self._frames_answered += 1
                    self._wake(self._input_ready)
                    if item.pcm.size:
                        self._model_audio(item.pcm, item.seconds)
                elif isinstance(item, ModelText):
                    self._model_text(item.text)
                else:
                    self.emit(error_event("model_error", item.message, kind="server_error"))

    # -- the relay's stages ----------------------------------------------------------------

    def on_queue(self, update: QueueUpdate) -> None:
        if self.config.queue_events:
            self.emit(event("pplex.queue.updated", position=update.position, eta_s=update.eta_s))

    def on_status(self, state: str) -> None:
        if self.config.queue_events:
            self.emit(event("pplex.session.status", state=state))

    def on_ready(self, handshake: bytes) -> None:
        del handshake
        self.on_status("live")
        self._spawn(self._pace(), "pace")
        if self.config.response_mode == "continuous":
            self._open()

    async def on_end(self, end: SessionEnd) -> None:
        failed = end.code != CloseCode.NORMAL
        self._close(
            "failed" if failed else "completed",
            {"type": "failed", "error": {"code": end.reason, "message": end.message}}
            if failed
            else None,
        )
        kind = (
            "server_error"
            if end.code in (CloseCode.BACKEND_ERROR, CloseCode.BAD_GATEWAY)
            else ("invalid_request_error")
        )
        self.emit(error_event(end.reason, end.message, kind=kind))

    async def run(self) -> None:
        self.session.state = "configuring"
        self.session.end = lambda code, message: self.request_end(
            code, message, reason="ended_by_gateway"
        )
        try:
            if not await self.configure():
                return
            self._started = True
            self.ctx.scheduler.check_admission(self.params.voice)
        except SessionEnd as end:
            await self._refuse(end.code, end.reason, end.message)
            return
        except PplexError as exc:
            code = CloseCode.TRY_LATER if exc.status in (429, 503) else CloseCode.POLICY
            await self._refuse(code, exc.code, exc.message)
            return
        await super().run()

    async def _refuse(self, code: CloseCode, reason: str, message: str) -> None:
        """End a session that never reached a model server: an error event, then the close."""
        if self.ws.closed:
            return
        kind = (
            "server_error"
            if code in (CloseCode.TRY_LATER, CloseCode.BAD_GATEWAY)
            else ("invalid_request_error")
        )
        try:
            await self._emit_now(error_event(reason, message, kind=kind))
            await self.ws.close(code=code, message=close_reason(message))
        except (ConnectionError, RuntimeError):
            _log.debug("The realtime client left before its session was refused.")
        _log.info("Realtime session %s ended before it started: %s", self.session.id, message)


def _initial_config(request: web.Request) -> RealtimeConfig:
    query = request.query
    mode = query.get("response_mode", "turns")
    if mode not in ("turns", "continuous"):
        raise ValidationError(
            "response_mode must be turns or continuous.", code="invalid_response_mode"
        )
    return RealtimeConfig(
        model=parse_model(query.get("model")),
        response_mode="continuous" if mode == "continuous" else "turns",
        queue_events=query.get("pplex_status", "") in ("1", "true", "yes"),
    )


@routes.get(ROUTE)
async def realtime(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    record = request[API_KEY]
    config = _initial_config(request)
    params = parse_session_params(request.query, ctx.settings, ctx.backends.voices())
    ws = make_client_socket(request, ctx, protocols=(SUBPROTOCOL,))
    if not ws.can_prepare(request).ok:
        raise PplexError(
            f"{ROUTE} speaks WebSocket; connect with a Realtime client (ws:// or wss://).",
            code="websocket_required",
            status=426,
        )
    ctx.scheduler.check_admission(params.voice)
    session = ctx.sessions.reserve(record, client_address(request), ROUTE)
    try:
        await ws.prepare(request)
        relay = RealtimeRelay(request, ctx, params, session, ws, config=config, key=record)
        await relay.run()
    finally:
        ctx.sessions.remove(session)
    return ws
