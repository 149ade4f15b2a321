"""Voice prompts: file names inside a PersonaPlex server's voice directory.

PersonaPlex's server (moshi/server.py, ``handle_chat``) joins ``voice_prompt`` to its
``--voice-prompt-dir`` after refusing anything with a directory part; a name ending in
``.pt`` is loaded as precomputed embeddings, any other name (a ``.wav``) goes through
``load_voice_prompt()`` (moshi/models/lm.py), which reads the audio at 24 kHz and normalises
it to -24 LUFS before the model steps through it frame by frame (the slower first session). So a
WAV voice is just its file name on the wire. Two upstream details matter: the model keeps the
last prompt loaded and reloads only when the *path* changes, so a voice removed and stored again
under the same name may sound like the old one until another voice is used; and a server run
with save_voice_prompt_embeddings writes ``<name>.pt`` next to the WAV, which is why a bare name
prefers the .pt only when the gateway's configured list has it.

Naming rule (README, "Custom voices"): names are matched with their extension. ``NATF2`` and
``NATF2.pt`` mean NATF2.pt; ``my-voice.wav`` means that WAV, and the bare ``my-voice`` means it
too when no ``my-voice.pt`` exists (a .pt of the same name always wins, so adding a WAV never
changes what an existing client gets).
"""

from __future__ import annotations

import re
from typing import Any

from pplex_desktop.core.errors import ValidationError

DEFAULT_VOICES: tuple[str, ...] = tuple(
    f"{family}{index}.pt"
    for family, count in (("NATF", 4), ("NATM", 4), ("VARF", 5), ("VARM", 5))
    for index in range(count)
)
VOICE_EXTENSIONS = (".pt", ".wav")
SHOWN_IN_ERRORS = 24
# What every uploader confirms, word for word (README, "Custom voices"); stored with the voice.
CONSENT_STATEMENT = (
    "This voice is my own, or I have its owner's permission to use it with this model."
)
_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Names for new voices are stricter: ASCII letters, digits, '-' and '_' only (no dots, so no
# extension games and no lookalike characters), and not a name Windows reserves for devices.
_NEW_VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "clock$"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)


def voice_file_name(name: str) -> str:
    """'NATF2' and 'NATF2.pt' both mean NATF2.pt; .wav prompts keep their extension."""
    name = name.strip()
    if not _VOICE_NAME.fullmatch(name) or ".." in name:
        raise ValidationError(
            f"{name[:40]!r} is not a voice name; use a name such as NATF2.", code="invalid_voice"
        )
    return name if name.endswith(VOICE_EXTENSIONS) else name + ".pt"


def display_name(file_name: str) -> str:
    """How a voice is shown and asked for: .pt voices bare (NATF2), WAV voices with .wav."""
    return file_name.removesuffix(".pt")


def resolve_voice(name: str, allowed: tuple[str, ...]) -> str:
    """Return the voice file for ``name`` if the backend has it, else raise a clear error."""
    wanted = voice_file_name(name)
    if wanted in allowed:
        return wanted
    bare = name.strip()
    if not bare.endswith(VOICE_EXTENSIONS) and bare + ".wav" in allowed:
        return bare + ".wav"
    # WAV voices first: they are few, and a near miss on one is the likely mistake.
    ordered = sorted(allowed, key=lambda v: not v.endswith(".wav"))
    shown = ", ".join(display_name(v) for v in ordered[:SHOWN_IN_ERRORS])
    more = "" if len(ordered) <= SHOWN_IN_ERRORS else f" and {len(ordered) - SHOWN_IN_ERRORS} more"
    raise ValidationError(
        f"The voice {display_name(wanted)!r} is not available; choose one of "
        f"{shown}{more} (GET /v1/voices lists them).",
        code="unknown_voice",
    )


def new_voice_file_name(name: str) -> str:
    """Check the name given to an uploaded voice and return its file name, ``<name>.wav``."""
    text = name.removesuffix(".wav") if isinstance(name, str) else ""
    if not _NEW_VOICE_NAME.fullmatch(text):
        raise ValidationError(
            "A voice name is 1 to 48 ASCII letters, digits, '-' or '_', starting with a letter "
            "or digit (for example my-voice).",
            code="invalid_voice_name",
        )
    if text.lower() in _RESERVED:
        raise ValidationError(
            f"{text!r} is a reserved device name on Windows; choose another voice name.",
            code="invalid_voice_name",
        )
    return text + ".wav"


_VOICE_FAMILIES = {
    "NATF": "natural female",
    "NATM": "natural male",
    "VARF": "varied female",
    "VARM": "varied male",
}


def voice_entry(file_name: str) -> dict[str, Any]:
    """A .pt voice is asked for by its bare name; a WAV voice by its file name (it may share a
    bare name with a .pt one, which would win), and is marked custom."""
    if file_name.endswith(".wav"):
        stem = file_name.removesuffix(".wav")
        return {"id": file_name, "file": file_name, "label": f"{stem} (custom)", "custom": True}
    ident = file_name.rsplit(".", 1)[0]
    family = _VOICE_FAMILIES.get(ident[:4])
    label = f"{ident} ({family})" if family and ident[4:].isdigit() else ident
    return {"id": ident, "file": file_name, "label": label, "custom": False}
