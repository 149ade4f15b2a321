"""Validating what a live caller asks for, before anything reaches a model server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.settings import Settings
from pplex_desktop.core.voices import resolve_voice

# The persona travels to the model server in its URL, and the servers (aiohttp apps) refuse a
# request target (path and query) over 8,190 bytes with 400. Counted as the most wasteful
# client would encode it (3 bytes for each UTF-8 byte outside A-Z a-z 0-9 - . _ ~; a CJK
# character takes 9), 6 KiB leaves 2 KB of the target for the path, the voice and the gateway's
# own parameters (the key, the format) in the caller's request.
MAX_PERSONA_ENCODED_BYTES = 6144
# Seeds go to PyTorch and NumPy generators, which take 32-bit seeds everywhere.
MAX_SEED = 2**32 - 1
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def encoded_length(text: str) -> int:
    """The bytes ``text`` takes percent-encoded in a URL, at most (every reserved byte as %XX)."""
    return sum(1 if byte in _UNRESERVED else 3 for byte in text.encode("utf-8", "replace"))


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
    size = encoded_length(prompt)
    if size > MAX_PERSONA_ENCODED_BYTES:
        raise ValidationError(
            f"The persona takes {size} bytes once URL-encoded; the limit is "
            f"{MAX_PERSONA_ENCODED_BYTES} encoded bytes (about {MAX_PERSONA_ENCODED_BYTES // 9} "
            "Chinese, Japanese or Korean characters, which take 9 bytes each, or 2,000 in "
            "English). Shorten the persona.",
            code="persona_too_long",
        )
    voice_name = _first(query, "voice_prompt", "voice") or settings.default_voice
    voice = resolve_voice(voice_name, voices)
    seed: int | None = None
    raw_seed = _first(query, "seed")
    if raw_seed is not None:
        text = raw_seed.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 10) or int(text) > MAX_SEED:
            raise ValidationError(
                f"seed must be a whole number from 0 to {MAX_SEED}, not {raw_seed[:20]!r}.",
                code="invalid_seed",
            )
        seed = int(text)
    status = query.get("pplex_status", "") in ("1", "true", "yes")
    return SessionParams(prompt, voice, seed, status)
