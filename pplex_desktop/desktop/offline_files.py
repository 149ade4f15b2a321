"""Offline files on disk: what a drop holds, whether a file can be sent, where answers go.

No Qt here, and nothing that may run on the Qt thread: these functions read headers, walk
folders and write files, so the panel calls them on a worker thread.

Answers are named ``<input stem>.<persona slug>.<voice>.wav`` with the transcript next to it
as ``.json``. An existing file is never replaced: when either name of the pair is taken, the
pair becomes ``<...> (2).wav``/``.json``, then ``(3)``, and so on. Each name is claimed with a
hard link (or an exclusive create where links are not supported), which fails instead of
replacing, so two saves racing for one name cannot overwrite each other either.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.personas import PRESETS
from pplex_desktop.moshi.audiofile import NotAudioError, probe

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg"})
EMPTY_FILE = "The file is empty."
NOT_AUDIO = "is not an audio file this app can read; send WAV, FLAC or OGG."
SLUG_MAX = 32
# The transcript JSON names its input: that is how a folder walk knows an answer from an input.
INPUT_FIELD = "input_file"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Link failures that mean "this file system has no hard links", not "the name is taken".
_NO_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


@dataclass(frozen=True, slots=True)
class FileCheck:
    path: Path
    seconds: float | None  # the declared length, when the file can be sent
    refusal: str | None  # why it cannot, as a sentence


# -- what a drop holds ---------------------------------------------------------------------------


def _is_answer(path: Path) -> bool:
    """A WAV this panel wrote: its transcript sits next to it and names an input."""
    transcript = path.with_suffix(".json")
    if path.suffix.lower() != ".wav" or not transcript.is_file():
        return False
    try:
        data = json.loads(transcript.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and INPUT_FIELD in data


def expand(paths: Iterable[Path]) -> list[Path]:
    """Dropped files as they are; folders walked for audio files (answers skipped); no repeats.

    A dropped file is kept whatever its name, so that a mislabelled one is refused with a
    reason instead of vanishing; inside folders only .wav, .flac and .ogg count.
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for path in paths:
        if path.is_dir():
            inside = (
                p
                for p in path.rglob("*")
                if p.suffix.lower() in AUDIO_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.is_file()
            )
            for item in sorted(inside, key=lambda p: str(p).lower()):
                if not _is_answer(item):
                    add(item)
        else:
            add(path)
    return found


def size_text(size: int) -> str:
    if size < 1024**2:
        return f"{max(1, round(size / 1024))} KB"
    mb = size / 1024**2
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


def check_file(path: Path, *, max_bytes: int, max_seconds: float) -> FileCheck:
    """Refuse here what the gateway would refuse, before a byte is uploaded."""
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        return FileCheck(path, None, f"'{name}' cannot be read: {exc.strerror or exc}.")
    if not path.is_file():
        return FileCheck(path, None, f"'{name}' is not a file.")
    if size > max_bytes:
        return FileCheck(
            path,
            None,
            f"'{name}' is {size_text(size)}; the gateway accepts files up to "
            f"{size_text(max_bytes)}. Split it or save it as FLAC or OGG.",
        )
    if size == 0:
        return FileCheck(path, None, EMPTY_FILE)
    try:
        info = probe(path)
    except NotAudioError:
        # Our own sentence: the reader's text names the file's whole path, which a row shows
        # to anyone looking at the screen, and adds nothing a user can act on.
        return FileCheck(path, None, f"'{name}' {NOT_AUDIO}")
    except PplexError as exc:
        return FileCheck(path, None, exc.message)
    seconds = info.declared_seconds
    if info.declared_frames <= 0:
        return FileCheck(path, None, f"'{name}' holds no audio.")
    if seconds > max_seconds:
        return FileCheck(
            path,
            None,
            f"'{name}' is {seconds:.0f} s long; the gateway accepts up to {max_seconds:g} s. "
            "Split it into shorter files.",
        )
    return FileCheck(path, seconds, None)


# -- names of the answers ------------------------------------------------------------------------


def slug(text: str, max_len: int = SLUG_MAX) -> str:
    words = _NOT_SLUG.sub("-", text.lower()).strip("-")
    if len(words) > max_len:
        cut = words[:max_len]
        words = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return words or "persona"


def persona_title(persona: str) -> str:
    """A preset's title, or the persona's own words."""
    for preset in PRESETS:
        if preset.text == persona.strip():
            return preset.title
    return persona.strip()


def persona_slug(persona: str) -> str:
    return slug(persona_title(persona))


def voice_id(voice: str) -> str:
    """NATF2.pt → NATF2: what the user picked, also what goes into file names."""
    return voice.rsplit(".", 1)[0] if voice.endswith((".pt", ".wav")) else voice


def result_stem(input_path: Path, persona: str, voice: str) -> str:
    return f"{input_path.stem}.{persona_slug(persona)}.{voice_id(voice)}"


def result_folder(input_path: Path, out_dir: Path | None) -> Path:
    return out_dir if out_dir is not None else input_path.parent


def temp_path(folder: Path, stem: str) -> Path:
    """A hidden, unique name in the answer's own folder, so publishing it is a link, not a copy."""
    return folder / f".{stem}.{secrets.token_hex(4)}.part"


def _claim(source: Path, target: Path) -> None:
    """Give ``source``'s content the name ``target``; FileExistsError if the name is taken."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links here (FAT, some network shares): exclusive create still never replaces.
        with source.open("rb") as src, target.open("xb") as dst:
            shutil.copyfileobj(src, dst)


def publish(folder: Path, stem: str, audio: Path, transcript: dict[str, Any]) -> tuple[Path, Path]:
    """Put the answer and its transcript under the first free pair of names; remove ``audio``.

    ``audio`` is a finished temporary file in ``folder``.
    """
    text = temp_path(folder, stem)
    try:
        text.write_text(json.dumps(transcript, ensure_ascii=False, indent=2), encoding="utf-8")
        for n in itertools.count(1):
            suffix = "" if n == 1 else f" ({n})"
            wav = folder / f"{stem}{suffix}.wav"
            js = folder / f"{stem}{suffix}.json"
            if wav.exists() or js.exists():
                continue
            try:
                _claim(audio, wav)
            except FileExistsError:
                continue
            try:
                _claim(text, js)
            except FileExistsError:
                wav.unlink()  # ours, claimed a moment ago: the pair moves on together
                continue
            return wav, js
    finally:
        for leftover in (audio, text):
            with contextlib.suppress(OSError):
                leftover.unlink()
    raise AssertionError("unreachable")
