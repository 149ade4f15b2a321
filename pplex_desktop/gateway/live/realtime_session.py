"""The OpenAI Realtime session as PersonaPlex can honour it: no I/O, only state and events.

Client events come in as parsed JSON; what the gateway must do comes out as commands and the
server events to send. The relay (realtime.py) owns the sockets; this owns the meaning, so
both can be tested apart.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pplex_desktop.core.errors import ValidationError

InputFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
ResponseMode = Literal["turns", "continuous"]
FORMATS: tuple[InputFormat, ...] = ("audio/pcm", "audio/pcmu", "audio/pcma")
# The beta API's names for the same formats, still sent by older SDKs and bridges.
BETA_FORMATS: dict[str, InputFormat] = {
    "pcm16": "audio/pcm",
    "g711_ulaw": "audio/pcmu",
    "g711_alaw": "audio/pcma",
}
RATES: dict[InputFormat, int] = {"audio/pcm": 24_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}
DEFAULT_MODEL = "personaplex"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
DEFAULT_SILENCE_MS = 600
MIN_SILENCE_MS, MAX_SILENCE_MS = 160, 5_000


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class EventError(ValidationError):
    """A client event the session refuses; answered with an ``error`` event, session kept."""

    def __init__(
        self, message: str, *, code: str, param: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.param = param
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """What ``session.update`` may set; persona and voice are fixed once the model is live."""

    model: str = DEFAULT_MODEL
    instructions: str | None = None  # None: the gateway's default persona
    voice: str | None = None  # None: the gateway's default voice
    input_format: InputFormat = "audio/pcm"
    output_format: InputFormat = "audio/pcm"
    response_mode: ResponseMode = "turns"
    silence_ms: int = DEFAULT_SILENCE_MS
    queue_events: bool = False


def parse_model(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return DEFAULT_MODEL
    if not _MODEL_NAME.match(raw.strip()):
        raise ValidationError(
            "model must be a short name of letters, digits and . _ : / - (any name is "
            "accepted and reported; the gateway serves its own model servers).",
            code="invalid_model",
        )
    return raw.strip()


def _format_of(value: Any, param: str) -> InputFormat:
    """An audio format given as {"type": "audio/pcm", "rate": 24000} or a beta name."""
    if isinstance(value, str) and value in BETA_FORMATS:
        return BETA_FORMATS[value]
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in FORMATS:
            rate = value.get("rate")
            fmt: InputFormat = kind
            if rate is not None and rate != RATES[fmt]:
                raise EventError(
                    f"{kind} is served at {RATES[fmt]} Hz only.",
                    code="invalid_value",
                    param=param,
                )
            return fmt
    raise EventError(
        "The audio format must be audio/pcm (24 kHz PCM16), audio/pcmu or audio/pcma "
        "(G.711 at 8 kHz).",
        code="invalid_value",
        param=param,
    )


def _mapping(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(f"{param} must be an object.", code="invalid_value", param=param)
    return value


def apply_update(config: RealtimeConfig, session: Any) -> RealtimeConfig:
    """The config after a ``session.update``; raises EventError and changes nothing if bad."""
    body = _mapping(session, "session")
    changes: dict[str, Any] = {}
    if "instructions" in body:
        instructions = body["instructions"]
        if instructions is not None and not isinstance(instructions, str):
            raise EventError(
                "instructions must be a string.", code="invalid_value", param="instructions"
            )
        changes["instructions"] = instructions.strip() or None if instructions else None
    audio = _mapping(body.get("audio"), "session.audio")
    audio_in = _mapping(audio.get("input"), "session.audio.input")
    audio_out = _mapping(audio.get("output"), "session.audio.output")
    voice = audio_out.get("voice", body.get("voice"))
    if voice is not None:
        if not isinstance(voice, str) or not voice.strip():
            raise EventError(
                "The voice must be a voice name such as NATF2.",
                code="invalid_value",
                param="session.audio.output.voice",
            )
        changes["voice"] = voice.strip()
    if "format" in audio_in:
        changes["input_format"] = _format_of(audio_in["format"], "session.audio.input.format")
    elif "input_audio_format" in body:
        changes["input_format"] = _format_of(body["input_audio_format"], "input_audio_format")
    if "format" in audio_out:
        changes["output_format"] = _format_of(audio_out["format"], "session.audio.output.format")
    elif "output_audio_format" in body:
        changes["output_format"] = _format_of(body["output_audio_format"], "output_audio_format")
    ours = _mapping(body.get("pplex"), "session.pplex")
    if "response_mode" in ours:
        mode = ours["response_mode"]
        if mode not in ("turns", "continuous"):
            raise EventError(
                "pplex.response_mode must be turns or continuous.",
                code="invalid_value",
                param="session.pplex.response_mode",
            )
        changes["response_mode"] = mode
    if "silence_ms" in ours:
        changes["silence_ms"] = _silence(ours["silence_ms"])
    if "queue_events" in ours:
        changes["queue_events"] = ours["queue_events"] is True
    return replace(config, **changes)


def _silence(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not MIN_SILENCE_MS <= value <= MAX_SILENCE_MS
    ):
        raise EventError(
            f"pplex.silence_ms must be a number of milliseconds from {MIN_SILENCE_MS} to "
            f"{MAX_SILENCE_MS}.",
            code="invalid_value",
            param="session.pplex.silence_ms",
        )
    return int(value)


def locked_change(live: RealtimeConfig, wanted: RealtimeConfig) -> str | None:
    """The name of a setting that cannot change once the model is live, if one would."""
    if wanted.instructions != live.instructions:
        return "instructions"
    if wanted.voice != live.voice:
        return "voice"
    return None


@dataclass
class Usage:
    """Audio seconds, and the same as Mimi frames (12.5 a second), the model's own tokens."""

    input_s: float = 0.0
    output_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        frames_in, frames_out = round(self.input_s * 12.5), round(self.output_s * 12.5)
        return {
            "total_tokens": frames_in + frames_out,
            "input_tokens": frames_in,
            "output_tokens": frames_out,
            "input_token_details": {"audio_tokens": frames_in, "text_tokens": 0},
            "output_token_details": {"audio_tokens": frames_out, "text_tokens": 0},
            "input_audio_seconds": round(self.input_s, 3),
            "output_audio_seconds": round(self.output_s, 3),
        }


@dataclass
class Response:
    """One response: the whole call in continuous mode, one spoken segment in turns mode."""

    id: str = field(default_factory=lambda: new_id("resp"))
    item_id: str = field(default_factory=lambda: new_id("item"))
    transcript: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cancelled: bool = False


def session_object(config: RealtimeConfig, session_id: str, persona: str, voice: str) -> Any:
    """The session as the GA Realtime API describes it, with PersonaPlex's fixed parts."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": config.model,
        "output_modalities": ["audio"],
        "instructions": persona,
        "audio": {
            "input": {
                "format": {"type": config.input_format, "rate": RATES[config.input_format]},
                "turn_detection": None,
                "transcription": None,
                "noise_reduction": None,
            },
            "output": {
                "format": {"type": config.output_format, "rate": RATES[config.output_format]},
                "voice": voice,
                "speed": 1.0,
            },
        },
        "tools": [],
        "tool_choice": "none",
        "max_output_tokens": "inf",
        "pplex": {
            "response_mode": config.response_mode,
            "silence_ms": config.silence_ms,
            "queue_events": config.queue_events,
            "full_duplex": True,
        },
    }


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(
    code: str,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return event(
        "error",
        error={
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    )


def response_object(
    response: Response, config: RealtimeConfig, voice: str, status: str, details: Any = None
) -> dict[str, Any]:
    done = status != "in_progress"
    return {
        "object": "realtime.response",
        "id": response.id,
        "status": status,
        "status_details": details,
        "output": [message_item(response, "completed" if done else "in_progress")] if done else [],
        "conversation_id": None,
        "output_modalities": ["audio"],
        "audio": {
            "output": {
                "format": {"type": config.output_format, "rate": RATES[config.output_format]},
                "voice": voice,
            }
        },
        "usage": response.usage.to_json() if done else None,
        "metadata": None,
    }


def message_item(response: Response, status: str) -> dict[str, Any]:
    content = (
        [{"type": "output_audio", "transcript": "".join(response.transcript)}]
        if status != "in_progress"
        else []
    )
    return {
        "id": response.item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "incomplete" if status == "incomplete" else status,
        "content": content,
    }


def opening_events(response: Response, config: RealtimeConfig, voice: str) -> list[dict[str, Any]]:
    where = {"response_id": response.id, "output_index": 0}
    return [
        event("response.created", response=response_object(response, config, voice, "in_progress")),
        event("response.output_item.added", **where, item=message_item(response, "in_progress")),
        event(
            "response.content_part.added",
            **where,
            item_id=response.item_id,
            content_index=0,
            part={"type": "audio", "transcript": ""},
        ),
    ]


def audio_delta(response: Response, delta: str) -> dict[str, Any]:
    return event(
        "response.output_audio.delta",
        response_id=response.id,
        item_id=response.item_id,
        output_index=0,
        content_index=0,
        delta=delta,
    )


def transcript_delta(response: Response, text: str) -> dict[str, Any]:
    return event(
        "response.output_audio_transcript.delta",
        response_id=response.id,
        item_id=response.item_id,
        output_index=0,
        content_index=0,
        delta=text,
    )


def closing_events(
    response: Response, config: RealtimeConfig, voice: str, status: str, details: Any = None
) -> list[dict[str, Any]]:
    transcript = "".join(response.transcript)
    part = {
        "response_id": response.id,
        "item_id": response.item_id,
        "output_index": 0,
        "content_index": 0,
    }
    item_status = "completed" if status == "completed" else "incomplete"
    return [
        event("response.output_audio.done", **part),
        event("response.output_audio_transcript.done", **part, transcript=transcript),
        event(
            "response.content_part.done",
            **part,
            part={"type": "audio", "transcript": transcript},
        ),
        event(
            "response.output_item.done",
            response_id=response.id,
            output_index=0,
            item=message_item(response, item_status),
        ),
        event("response.done", response=response_object(response, config, voice, status, details)),
    ]
