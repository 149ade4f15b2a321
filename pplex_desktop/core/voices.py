"""Voice prompts: file names inside a PersonaPlex server's voice directory."""

from __future__ import annotations

import re

from pplex_desktop.core.errors import ValidationError

DEFAULT_VOICES: tuple[str, ...] = tuple(
    f"{family}{index}.pt"
    for family, count in (("NATF", 4), ("NATM", 4), ("VARF", 5), ("VARM", 5))
    for index in range(count)
)
_VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def voice_file_name(name: str) -> str:
    """'NATF2' and 'NATF2.pt' both mean NATF2.pt; .wav prompts keep their extension."""
    name = name.strip()
    if not _VOICE_NAME.match(name) or ".." in name:
        raise ValidationError(
            f"{name[:40]!r} is not a voice name; use a name such as NATF2.", code="invalid_voice"
        )
    return name if name.endswith((".pt", ".wav")) else name + ".pt"


def resolve_voice(name: str, allowed: tuple[str, ...]) -> str:
    """Return the voice file for ``name`` if the backend has it, else raise a clear error."""
    wanted = voice_file_name(name)
    if wanted not in allowed:
        shown = ", ".join(v.rsplit(".", 1)[0] for v in allowed[:8])
        more = "" if len(allowed) <= 8 else f" and {len(allowed) - 8} more"
        raise ValidationError(
            f"The voice {wanted.rsplit('.', 1)[0]!r} is not available; choose one of "
            f"{shown}{more} (GET /v1/voices lists them).",
            code="unknown_voice",
        )
    return wanted
