"""What an offline request asks for, validated before any audio is decoded."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.settings import MAX_SILENCE_S, OFFLINE_ENGINES, Settings
from pplex_desktop.gateway.live.params import parse_session_params

FORMATS = ("wav", "json")
TEXT_FIELDS = frozenset(
    {"persona", "text_prompt", "voice", "voice_prompt", "seed", "silence_s", "format", "engine"}
)


@dataclass(frozen=True, slots=True)
class OfflineParams:
    persona: str
    voice: str  # a file name from the voice list, e.g. NATF2.pt
    seed: int | None  # only the local engine uses it (PROTOCOL.md: it crashes /api/chat)
    silence_s: float
    engine: str
    response_format: str


def merge_fields(query: Mapping[str, str], form: Mapping[str, str]) -> dict[str, str]:
    """Form fields win over query parameters; other query parameters (api_key) are ignored."""
    merged = {k: v for k, v in query.items() if k in TEXT_FIELDS}
    merged.update(form)
    return merged


def _silence(raw: str | None, default: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(
            f"silence_s must be a number of seconds, not {raw[:20]!r}.", code="invalid_silence"
        ) from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SILENCE_S:
        raise ValidationError(
            f"silence_s must be between 0 and {MAX_SILENCE_S:g} seconds.", code="invalid_silence"
        )
    return value


def _choice(raw: str | None, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (raw or default).strip().lower()
    if value not in allowed:
        raise ValidationError(
            f"{name} must be one of {', '.join(allowed)}, not {value[:20]!r}.",
            code=f"invalid_{name}",
        )
    return value


def parse_offline_params(
    fields: Mapping[str, str], settings: Settings, voices: tuple[str, ...]
) -> OfflineParams:
    session = parse_session_params(fields, settings, voices)
    engine = _choice(fields.get("engine"), "engine", OFFLINE_ENGINES, settings.offline_engine)
    if engine == "local" and not settings.personaplex_repo:
        raise ValidationError(
            "The local engine is not configured on this gateway (PERSONAPLEX_REPO is unset); "
            "use engine=stream.",
            code="engine_unavailable",
        )
    return OfflineParams(
        persona=session.text_prompt,
        voice=session.voice,
        seed=session.seed,
        silence_s=_silence(fields.get("silence_s"), settings.offline_silence_s),
        engine=engine,
        response_format=_choice(fields.get("format"), "format", FORMATS, "wav"),
    )
