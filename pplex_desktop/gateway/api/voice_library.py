"""Custom voices: WAV prompts in a model server's voice folder that this gateway can write.

Each voice is ``<name>.wav`` (24 kHz mono, -24 LUFS, prepared by moshi/voice_check.py) with a
sidecar ``<name>.wav.consent.json`` that records who stored it, when, with which key, and the
consent statement they gave. The sidecar is written first, so a voice never appears without its
record; a .wav put in the folder by hand is offered too (whoever can write the server's folder
answers for it) and shows no record.

Writes are atomic (temp file in the same folder, fsync, rename, fsync of the folder): the model
server, which opens the file by name for each session, sees either no voice or the whole one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.fs import (
    PRIVATE,
    PUBLIC,
    fsync_dir,
    replace_with,
    temp_beside,
    write_atomic,
)
from pplex_desktop.core.voices import CONSENT_STATEMENT, new_voice_file_name

_log = logging.getLogger(__name__)
__all__ = ["CONSENT_STATEMENT", "ConsentRecord", "VoiceLibrary"]
CONSENT_SUFFIX = ".consent.json"
VOICE_FILE_MODE = PUBLIC


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    statement: str
    by: str  # the key's name, or "admin"
    key_id: int | None
    at: float  # Unix time

    def to_json(self) -> dict[str, Any]:
        return {"statement": self.statement, "by": self.by, "key_id": self.key_id, "at": self.at}


class VoiceLibrary:
    """One voice folder. Synchronous file work: call it through asyncio.to_thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def problem(self) -> str | None:
        """Why voices cannot be stored here, as a sentence, or None if they can."""
        if not self.folder.is_dir():
            return "The voice folder does not exist on this machine."
        if not os.access(self.folder, os.W_OK | os.X_OK):
            return "The gateway may not write to the voice folder."
        return None

    def scan(self) -> tuple[str, ...]:
        """The .wav voices in the folder whose names are valid voice names, sorted."""
        try:
            entries = sorted(p.name for p in self.folder.iterdir())
        except OSError:
            return ()
        out = []
        for entry in entries:
            if not entry.endswith(".wav") or entry.startswith("."):
                continue
            try:
                if new_voice_file_name(entry) == entry and (self.folder / entry).is_file():
                    out.append(entry)
            except ValidationError:
                continue
        return tuple(out)

    def record(self, file_name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.folder / (file_name + CONSENT_SUFFIX)).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def new_temp(self) -> Path:
        """A temp file name in the folder, so that storing it is a rename, not a copy."""
        return temp_beside(self.folder / "voice", suffix=".wav")

    def store(self, prepared: Path, file_name: str, consent: ConsentRecord) -> None:
        """Move the prepared (fsynced) WAV in place under ``file_name``, its record first."""
        body = json.dumps({"voice": file_name, "consent": consent.to_json()}, indent=2)
        write_atomic(self.folder / (file_name + CONSENT_SUFFIX), body + "\n", mode=PRIVATE)
        # Temp files are private (0600); the model server may run as another user and must
        # read the voice. The consent record stays private.
        replace_with(prepared, self.folder / file_name, mode=VOICE_FILE_MODE)
        _log.info("The voice %s was stored by %s.", file_name, consent.by)

    def delete(self, file_name: str) -> bool:
        path = self.folder / file_name
        if not path.is_file():
            return False
        path.unlink()
        (self.folder / (file_name + CONSENT_SUFFIX)).unlink(missing_ok=True)
        fsync_dir(self.folder)
        _log.info("The voice %s was removed.", file_name)
        return True
