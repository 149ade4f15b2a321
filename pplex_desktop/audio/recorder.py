"""Optional recording of a conversation: a stereo WAV plus a transcript JSON.

Left channel: what the model heard (the microphone after the push-to-talk gate, silence while
the key is up). Right channel: what the speaker played (what left the jitter buffer, after
ducking and muting, silence where it ran dry). Both run at 24 kHz from the moment the
conversation went live, and sample n on either side is the same instant: each block is placed
by its stamp (when it was captured, when it was heard) on one timeline, not by counting the
samples that happened to arrive, because a stalled audio thread or an underrun loses time on one
side only. The WAV is written as the conversation goes, HOLD_SECONDS behind it: a stream's
stamps can turn out to have been late (a sound clock learns its true pace from its earliest
block, and through PulseAudio the first seconds of a microphone come a block late), and while
that history is still in memory it is moved back to where it belongs instead of dropping the
start of the block that revealed it.
"""

from __future__ import annotations

import json
import logging
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
from pplex_desktop.core.fs import write_atomic
from pplex_desktop.core.paths import data_dir
from pplex_desktop.moshi.codec import SAMPLE_RATE

_log = logging.getLogger(__name__)
Pcm = npt.NDArray[np.float32]
# How far behind the newest audio the file is written: long enough to take back the silence a
# late-stamped start was padded with (the microphone's clock settles within 1-3 s), short enough
# that a stalled side (a speaker stream that stopped) is padded rather than buffered forever.
HOLD_SECONDS = 5.0
# Stamps wobble by a few milliseconds from block to block; following each would chop the audio,
# so blocks stay back to back and a channel is moved only when it is off by more than JUMP_S (a
# gap, padded with silence, or an overlap, whose start is dropped) or when its average offset
# passes DRIFT_S (two sample clocks running at slightly different rates).
JUMP_SECONDS = 0.03
# A clock that settles is found late by about a block (80-90 ms through PulseAudio); a larger
# overlap is not that, and is dropped as before rather than moving seconds of audio.
TAKE_BACK_MAX_SECONDS = 0.25
DRIFT_SECONDS = 0.004
_SMOOTHING = 0.1
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
        self._left = _Channel()
        self._right = _Channel()
        self._frames_written = 0
        self._pieces: list[TranscriptPiece] = []
        # (seconds since the recording began, the live delay then): what anyone can check the
        # WAV against from outside, since the right channel trails the left by exactly that.
        self._delays: list[_Delay] = []
        self._closed: RecordingInfo | None = None
        # Metadata right away, so a crash still leaves a readable description next to the WAV.
        self._write_json(duration_s=0.0, complete=False)
        _log.info("Recording the conversation to %s.", self.wav_path.name)

    @property
    def elapsed(self) -> float:
        return self._clock.monotonic() - self._start_mono

    @property
    def user_samples(self) -> int:
        """Samples of the user's side received so far: the index of the next one."""
        return self._left.received

    @property
    def model_samples(self) -> int:
        return self._right.received

    def write_user(self, pcm: Pcm, t: float | None = None) -> None:
        """Audio as sent to the model (after the push-to-talk gate), captured from time ``t``
        on (the recorder's monotonic clock); None: right after the previous block."""
        self._place(self._left, pcm, t)

    def write_model(self, pcm: Pcm, t: float | None = None) -> None:
        """Audio as the speaker played it, heard from time ``t`` on."""
        self._place(self._right, pcm, t)

    def _place(self, channel: _Channel, pcm: Pcm, t: float | None) -> None:
        if self._closed is not None or not pcm.size:
            return
        at = None if t is None else round((t - self._start_mono) * SAMPLE_RATE)
        channel.place(np.asarray(pcm, dtype=np.float32).reshape(-1), at, self._frames_written)
        self._drain()

    def add_text(self, text: str) -> None:
        if self._closed is None:
            self._pieces.append(TranscriptPiece(round(self.elapsed, 3), text))

    def add_delay(
        self,
        delay_s: float,
        t: float | None = None,
        *,
        user_at: int | None = None,
        model_at: int | None = None,
    ) -> None:
        """The live delay (capture of the user's voice to hearing the model's answer to it) as
        measured at time ``t`` (the recorder's monotonic clock; None: now), from the user's
        sample ``user_at`` to the model's ``model_at`` (see user_samples, model_samples): when
        either side is later moved to where it belongs, the sidecar's figure follows it."""
        if self._closed is None:
            at = self._clock.monotonic() if t is None else t
            self._delays.append(_Delay(at - self._start_mono, delay_s, user_at, model_at))

    def _delay_ms(self, delay: _Delay) -> float:
        """The delay as the file has it: a side's sample moved earlier after it was measured
        makes the right channel trail the left by more (user) or less (model)."""
        later = 0
        if delay.user_at is not None:
            later += self._left.moved_by(delay.user_at)
        if delay.model_at is not None:
            later -= self._right.moved_by(delay.model_at)
        return round(1000.0 * (delay.delay_s + later / SAMPLE_RATE), 1)

    def _drain(self, *, final: bool = False) -> None:
        longest = max(self._left.pending, self._right.pending)
        n = longest if final else longest - round(HOLD_SECONDS * SAMPLE_RATE)
        if n <= 0:
            return
        written = self._frames_written
        left = self._left.take(n, written)
        right = self._right.take(n, written)
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
        for side, channel in (("user", self._left), ("model", self._right)):
            if channel.padded or channel.dropped:
                _log.info(
                    "The %s side of the recording was kept on time with %.0f ms of silence "
                    "inserted and %.0f ms of overlap dropped.",
                    side,
                    1000 * channel.padded / SAMPLE_RATE,
                    1000 * channel.dropped / SAMPLE_RATE,
                )
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
            # Both channels are placed on one clock: right trails left by the delay heard.
            "timeline": "capture and playback times",
            "complete": complete,
            "wav": self.wav_path.name,
            "text": "".join(p.text for p in self._pieces).strip(),
            "transcript": [{"t": p.t, "text": p.text} for p in self._pieces],
            # The delay measured live, about twice a second: at WAV time t the model's answer
            # to what the user said delay_ms earlier is heard, so the right channel trails the
            # left by delay_ms around there.
            "delays": [{"t": round(d.t, 3), "delay_ms": self._delay_ms(d)} for d in self._delays],
        }
        write_atomic(self.json_path, json.dumps(data, ensure_ascii=False, indent=1))


@dataclass(frozen=True, slots=True)
class _Delay:
    t: float  # seconds since the recording began
    delay_s: float
    user_at: int | None  # the samples it was measured between, None: not known
    model_at: int | None


class _Channel:
    """One side of the recording: samples waiting to be written, from the written frontier up to
    ``end`` on the shared timeline (an index in samples since the recording began)."""

    def __init__(self) -> None:
        self._chunks: list[Pcm] = []
        # Per chunk: None for audio; for silence inserted to stay on time, the index (in samples
        # received) of the audio after it, which is what moves when it is taken back.
        self._silence_before: list[int | None] = []
        self.received = 0  # samples given to place(), the index of the next one
        # (first, end, samples): the received samples first..end-1 were moved that much earlier.
        self._moves: list[tuple[int, int, int]] = []
        self.pending = 0
        self.end: int | None = None  # None until the first block arrived
        self._offset = 0.0  # smoothed (stamp - end) in samples
        self._jump = round(JUMP_SECONDS * SAMPLE_RATE)
        self._take_back_max = round(TAKE_BACK_MAX_SECONDS * SAMPLE_RATE)
        self._catching_up = False  # dropping what overlaps, over several blocks
        self._drift = DRIFT_SECONDS * SAMPLE_RATE
        self.padded = 0  # samples of silence inserted to stay on time (net of any taken back)
        self.dropped = 0  # samples left out because they overlapped what was already placed

    def place(self, pcm: Pcm, at: int | None, frontier: int) -> None:
        """Add ``pcm``, whose first sample belongs at ``at`` (None: right after the last one);
        nothing lands before ``frontier``, which is already in the file. What was placed before
        it may move earlier (its stamps came late): ``moved_by`` says how far."""
        size = pcm.shape[0]
        moved = 0
        if self.end is None:
            self.end = frontier
            shift = 0 if at is None else at - frontier
        elif at is None:
            shift = 0
        else:
            error = at - self.end
            if abs(error) > self._jump:
                shift, self._offset = error, 0.0
            else:
                self._offset += _SMOOTHING * (error - self._offset)
                shift = round(self._offset) if abs(self._offset) > self._drift else 0
                self._offset -= shift
        if shift >= 0:
            self._catching_up = False
        if shift > 0:
            self._append(np.zeros(shift, dtype=np.float32), silence_before=self.received)
            self.padded += shift
        elif shift < 0:
            if -shift <= self._take_back_max and not self._catching_up:
                # What was placed since the last silence came late by ``-shift`` (a sound clock
                # settling): take that silence back while it is not in the file yet.
                moved = self._take_back_silence(-shift)
                if frontier == 0:
                    # Nothing is in the file yet: what moves before the start was said before
                    # the recording began, like a first block stamped before it.
                    moved += self._drop_front(-shift - moved)
            skip = min(-shift - moved, pcm.shape[0])
            # An overlap longer than this block goes on into the next ones: drop it all.
            self._catching_up = -shift - moved > pcm.shape[0]
            pcm = pcm[skip:]
            self.dropped += skip
        if pcm.size:
            self._append(pcm, silence_before=None)
        self.received += size

    def moved_by(self, index: int) -> int:
        """How much earlier the received sample ``index`` now lies than where it was placed."""
        return sum(n for first, end, n in self._moves if first <= index < end)

    def _append(self, pcm: Pcm, *, silence_before: int | None) -> None:
        self._chunks.append(pcm)
        self._silence_before.append(silence_before)
        self.pending += pcm.shape[0]
        assert self.end is not None
        self.end += pcm.shape[0]

    def _take_back_silence(self, wanted: int) -> int:
        """Shorten the latest inserted silences still pending by up to ``wanted`` samples, moving
        what came after them earlier; how many samples that took back."""
        taken = 0
        for i in range(len(self._chunks) - 1, -1, -1):
            after = self._silence_before[i]
            if taken == wanted:
                break
            if after is None:
                continue
            k = min(wanted - taken, self._chunks[i].shape[0])
            self._chunks[i] = self._chunks[i][k:]
            taken += k
            if k:
                self._moves.append((after, self.received, k))
        self.pending -= taken
        self.padded -= taken
        assert self.end is not None
        self.end -= taken
        return taken

    def _drop_front(self, wanted: int) -> int:
        """Leave out up to ``wanted`` of the earliest pending samples; how many that was."""
        dropped = 0
        while self._chunks and dropped < wanted:
            head = self._chunks[0]
            k = min(wanted - dropped, head.shape[0])
            dropped += k
            if k == head.shape[0]:
                self._chunks.pop(0)
                self._silence_before.pop(0)
            else:
                self._chunks[0] = head[k:]
        self.pending -= dropped
        if dropped:
            self._moves.append((0, self.received, dropped))  # all that is pending moved
        assert self.end is not None
        self.end -= dropped
        return dropped

    def take(self, n: int, frontier: int) -> Pcm:
        """Remove and return the next ``n`` samples, zero-padded where there are fewer."""
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        chunks = self._chunks
        while chunks and filled < n:
            head = chunks[0]
            k = min(n - filled, head.shape[0])
            out[filled : filled + k] = head[:k]
            filled += k
            if k == head.shape[0]:
                chunks.pop(0)
                self._silence_before.pop(0)
            else:
                chunks[0] = head[k:]
        self.pending -= filled
        if self.end is not None and filled < n:
            # Silence was written for this side: its next block cannot land before it.
            self.end = frontier + n
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
