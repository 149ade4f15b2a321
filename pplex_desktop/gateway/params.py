"""Validating what a live caller asks for, before anything reaches a model server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.settings import Settings
from pplex_desktop.core.voices import resolve_voice


@dataclass(frozen=True, slots=True)
class SessionParams:
    text_prompt: str
    voice: str  # a file name from the voice list, e.g. NATF2.pt
    seed: int | None
    status_updates: bool  # native callers that asked for queue/status metadata

    def backend_query(self) -> dict[str, str]:
        # seed is never forwarded: it crashes the PersonaPlex server's handler (PROTOCOL.md).
        return {"text_prompt": self.text_prompt, "voice_prompt": self.voice}


def _first(query: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = query.get(name)
        if value is not None and value.strip():
            return value
    return None


def parse_session_params(
    query: Mapping[str, str], settings: Settings, voices: tuple[str, ...]
) -> SessionParams:
    prompt = _first(query, "text_prompt", "persona") or settings.default_persona
    prompt = prompt.strip()
    if len(prompt) > settings.max_prompt_chars:
        raise ValidationError(
            f"The persona is {len(prompt)} characters long; the limit is "
            f"{settings.max_prompt_chars}.",
            code="prompt_too_long",
        )
    voice_name = _first(query, "voice_prompt", "voice") or settings.default_voice
    voice = resolve_voice(voice_name, voices)
    seed: int | None = None
    raw_seed = _first(query, "seed")
    if raw_seed is not None:
        try:
            seed = int(raw_seed)
        except ValueError:
            raise ValidationError(
                f"seed must be a whole number, not {raw_seed[:20]!r}.", code="invalid_seed"
            ) from None
    status = query.get("pplex_status", "") in ("1", "true", "yes")
    return SessionParams(prompt, voice, seed, status)
