"""Optional recording of a conversation: a stereo WAV plus a transcript JSON.

Left channel: what the model heard (the microphone after the push-to-talk gate). Right channel:
what the speaker played (what left the jitter buffer, after ducking and muting). Both start at
the moment the conversation went live and run at 24 kHz, so sample n on either side is the same
instant. The WAV is written as the conversation goes, never held in memory.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from pplex_desktop.core.clock import Clock, SystemClock
from pplex_desktop.core.errors import NotFoundError, PplexError
from pplex_desktop.core.paths import data_dir
from pplex_desktop.moshi.codec import SAMPLE_RATE

_log = logging.getLogger(__name__)
Pcm = npt.NDArray[np.float32]
# If one side stops arriving (a stalled speaker stream), pad it rather than buffer forever.
MAX_SKEW_SECONDS = 5.0
_STEM = re.compile(r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_[A-Za-z0-9._-]+$")


class RecordingError(PplexError):
    code = "recording_failed"
    status = 500


def recordings_dir(base: Path | None = None) -> Path:
    path = (base or data_dir()) / "recordings"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass(frozen=True, slots=True)
class TranscriptPiece:
    t: float  # seconds since the conversation went live
    text: str


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    stem: str
    wav_path: Path
    json_path: Path
    started_at: str  # ISO 8601, UTC
    voice: str
    persona: str
    duration_s: float
    text: str


def _safe_voice(voice: str) -> str:
    stem = voice.removesuffix(".pt")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "voice"


class ConversationRecorder:
    def __init__(
        self,
        *,
        voice: str,
        persona: str,
        folder: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._folder = folder or recordings_dir()
        self.voice = voice
        self.persona = persona
        wall = self._clock.wall()
        self._start_mono = self._clock.monotonic()
        started = datetime.fromtimestamp(wall, UTC)
        self.started_at = started.isoformat(timespec="seconds").replace("+00:00", "Z")
        base = f"{started.strftime('%Y-%m-%dT%H-%M-%S')}_{_safe_voice(voice)}"
        stem, suffix = base, 1
        while (self._folder / f"{stem}.wav").exists() or (self._folder / f"{stem}.json").exists():
            suffix += 1
            stem = f"{base}-{suffix}"
        self.stem = stem
        self.wav_path = self._folder / f"{stem}.wav"
        self.json_path = self._folder / f"{stem}.json"
        try:
            self._wav = sf.SoundFile(
                str(self.wav_path), "w", samplerate=SAMPLE_RATE, channels=2, subtype="PCM_16"
            )
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise RecordingError(
                f"The recording could not be started in {self._folder}: {exc}. "
                "Check that the folder is writable, or turn recording off."
            ) from None
        self._left: list[Pcm] = []
        self._right: list[Pcm] = []
        self._left_n = 0
        self._right_n = 0
        self._frames_written = 0
        self._pieces: list[TranscriptPiece] = []
        self._closed: RecordingInfo | None = None
        # Metadata right away, so a crash still leaves a readable description next to the WAV.
        self._write_json(duration_s=0.0, complete=False)
        _log.info("Recording the conversation to %s.", self.wav_path.name)

    @property
    def elapsed(self) -> float:
        return self._clock.monotonic() - self._start_mono

    def write_user(self, pcm: Pcm) -> None:
        """Audio as sent to the model (after the push-to-talk gate)."""
        if self._closed is None and pcm.size:
            self._left.append(np.asarray(pcm, dtype=np.float32).reshape(-1))
            self._left_n += pcm.size
            self._drain()

    def write_model(self, pcm: Pcm) -> None:
        """Audio as the speaker played it."""
        if self._closed is None and pcm.size:
            self._right.append(np.asarray(pcm, dtype=np.float32).reshape(-1))
            self._right_n += pcm.size
            self._drain()

    def add_text(self, text: str) -> None:
        if self._closed is None:
            self._pieces.append(TranscriptPiece(round(self.elapsed, 3), text))

    def _drain(self, *, final: bool = False) -> None:
        n = min(self._left_n, self._right_n)
        longest = max(self._left_n, self._right_n)
        if final or longest - n > MAX_SKEW_SECONDS * SAMPLE_RATE:
            n = longest
        if n <= 0:
            return
        left = _take(self._left, n)
        right = _take(self._right, n)
        self._left_n = max(self._left_n - n, 0)
        self._right_n = max(self._right_n - n, 0)
        self._wav.write(np.clip(np.column_stack((left, right)), -1.0, 1.0))
        self._frames_written += n

    def close(self) -> RecordingInfo:
        """Finish both files; calling it again returns the same description."""
        if self._closed is not None:
            return self._closed
        self._drain(final=True)
        self._wav.close()
        duration = self._frames_written / SAMPLE_RATE
        self._write_json(duration_s=duration, complete=True)
        self._closed = RecordingInfo(
            stem=self.stem,
            wav_path=self.wav_path,
            json_path=self.json_path,
            started_at=self.started_at,
            voice=self.voice,
            persona=self.persona,
            duration_s=duration,
            text="".join(p.text for p in self._pieces).strip(),
        )
        _log.info("Saved a %.1f s recording as %s.", duration, self.wav_path.name)
        return self._closed

    def _write_json(self, *, duration_s: float, complete: bool) -> None:
        data: dict[str, Any] = {
            "version": 1,
            "started_at": self.started_at,
            "duration_s": round(duration_s, 3),
            "persona": self.persona,
            "voice": self.voice,
            "sample_rate": SAMPLE_RATE,
            "channels": {"left": "user, as sent to the model", "right": "model, as played"},
            "complete": complete,
            "wav": self.wav_path.name,
            "text": "".join(p.text for p in self._pieces).strip(),
            "transcript": [{"t": p.t, "text": p.text} for p in self._pieces],
        }
        tmp = self.json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.json_path)


def _take(chunks: list[Pcm], n: int) -> Pcm:
    """Remove and return the first ``n`` samples of ``chunks``, zero-padded if there are fewer."""
    out = np.zeros(n, dtype=np.float32)
    filled = 0
    while chunks and filled < n:
        head = chunks[0]
        k = min(n - filled, head.shape[0])
        out[filled : filled + k] = head[:k]
        filled += k
        if k == head.shape[0]:
            chunks.pop(0)
        else:
            chunks[0] = head[k:]
    return out


def _info_from_json(path: Path) -> RecordingInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RecordingInfo(
            stem=path.stem,
            wav_path=path.with_name(str(data.get("wav") or f"{path.stem}.wav")),
            json_path=path,
            started_at=str(data["started_at"]),
            voice=str(data.get("voice", "")),
            persona=str(data.get("persona", "")),
            duration_s=float(data.get("duration_s", 0.0)),
            text=str(data.get("text", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("Skipping the unreadable recording description %s: %s", path.name, exc)
        return None


def list_recordings(folder: Path | None = None) -> list[RecordingInfo]:
    """Recordings described in the folder, newest first."""
    folder = folder or recordings_dir()
    infos = [
        info
        for path in folder.glob("*.json")
        if _STEM.match(path.stem) and (info := _info_from_json(path)) is not None
    ]
    return sorted(infos, key=lambda i: (i.started_at, i.stem), reverse=True)


def delete_recording(stem: str, folder: Path | None = None) -> None:
    """Delete a recording's WAV and JSON; ``stem`` is ``RecordingInfo.stem``."""
    if not _STEM.match(stem):
        raise NotFoundError(f"'{stem}' is not the name of a recording.")
    folder = folder or recordings_dir()
    paths = [folder / f"{stem}.wav", folder / f"{stem}.json"]
    if not any(p.exists() for p in paths):
        raise NotFoundError(f"The recording '{stem}' does not exist (any more).")
    for path in paths:
        path.unlink(missing_ok=True)
    _log.info("Deleted the recording %s.", stem)
