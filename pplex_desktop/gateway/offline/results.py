"""What an offline engine hands back, and how a finished job's files are written and read.

Result files are written to a temporary name and renamed, so a gateway killed mid-write never
leaves a half file that a later download would serve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.fs import write_atomic, write_atomic_with
from pplex_desktop.moshi.audiofile import write_wav
from pplex_desktop.moshi.codec import FRAME_SECONDS, SAMPLE_RATE, Pcm

INPUT_NAME = "input.f32"  # the decoded upload: raw little-endian float32, 24 kHz mono
AUDIO_NAME = "response.wav"
TRANSCRIPT_NAME = "transcript.json"


class Reporter(Protocol):
    """How an engine tells the job API where it is."""

    def stage(self, name: str) -> None:
        """waiting, connecting, preparing, streaming or running (the local engine)."""

    def progress(self, value: float) -> None:
        """The share of the answer produced so far, 0 to 1."""


class EngineError(PplexError):
    """A job could not be run; ``backend_failed`` says why a backend is no longer trusted."""

    code = "backend_failed"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        backend_failed: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.backend_failed = backend_failed


@dataclass(frozen=True, slots=True)
class Piece:
    start_s: float  # output frame index x 80 ms
    text: str


@dataclass(frozen=True, slots=True)
class EngineResult:
    pcm: Pcm  # exactly input + silence, 24 kHz mono
    pieces: tuple[Piece, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces).strip()


def piece_at(frame_index: int, text: str) -> Piece:
    return Piece(round(max(frame_index, 0) * FRAME_SECONDS, 2), text)


def fit(pcm: Pcm, samples: int) -> Pcm:
    """Trim or pad with silence to exactly ``samples``."""
    if pcm.shape[0] >= samples:
        return pcm[:samples]
    return np.concatenate((pcm, np.zeros(samples - pcm.shape[0], dtype=np.float32)))


def write_result(folder: Path, job_id: str, result: EngineResult) -> float:
    """Write the answer's WAV and transcript; return the answer's length in seconds."""
    seconds = float(result.pcm.shape[0]) / SAMPLE_RATE
    transcript = {
        "id": job_id,
        "text": result.text,
        "duration_s": round(seconds, 3),
        "pieces": [{"start_s": p.start_s, "text": p.text} for p in result.pieces],
    }
    write_atomic_with(folder / AUDIO_NAME, lambda tmp: write_wav(tmp, result.pcm))
    write_atomic(folder / TRANSCRIPT_NAME, json.dumps(transcript, ensure_ascii=False))
    return seconds


def load_input(folder: Path) -> Pcm:
    """The decoded upload, mapped rather than read: a 15-minute file is 86 MB."""
    path = folder / INPUT_NAME
    try:
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=np.float32)
        return np.memmap(path, dtype="<f4", mode="r")
    except OSError as exc:
        raise EngineError(
            f"The job's decoded input is no longer on disk ({exc.strerror}); submit the file "
            "again.",
            code="input_missing",
            status=500,
        ) from None
