"""Checking and preparing a recording to be a voice prompt.

PersonaPlex conditions its voice on a few seconds of the speaker; a prompt that is too short,
mostly silence or clipped gives a poor or strange voice, so such files are refused with a
sentence instead of being stored. What passes is stored the way the model reads it anyway
(24 kHz mono, -24 LUFS, the same as upstream ``load_voice_prompt()``), so the first session
sounds like the preview and the file is small.

CPU-bound (decoding, resampling, the loudness meter): call it off the event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from pplex_desktop.core.errors import UnprocessableError
from pplex_desktop.core.fs import fsync_file
from pplex_desktop.moshi.audiofile import (
    InvalidAudioError,
    NotAudioError,
    probe,
    resample,
    to_mono,
    write_wav,
)
from pplex_desktop.moshi.codec import SAMPLE_RATE

MIN_SECONDS = 5.0
MAX_SECONDS = 30.0
TARGET_LUFS = -24.0
# A sample this close to full scale counts as clipped; a recording with more than this share of
# them was overdriven (a peak-normalised file touches full scale only a handful of times).
CLIP_LEVEL = 0.999
MAX_CLIPPED_SHARE = 0.001
# Speech present: at least this much of the recording in 20 ms frames louder than -45 dBFS.
ACTIVE_FRAME_S = 0.02
ACTIVE_LEVEL_DBFS = -45.0
MIN_ACTIVE_S = 2.0
PEAK_CEILING = 0.98


class VoiceRefusedError(UnprocessableError):
    code = "voice_refused"


@dataclass(frozen=True, slots=True)
class VoiceReport:
    seconds: float
    source_rate: int
    source_channels: int
    loudness_lufs: float  # of the recording as sent
    active_s: float


def _frame_levels(pcm: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float64]:
    size = max(1, int(rate * ACTIVE_FRAME_S))
    count = len(pcm) // size
    frames = pcm[: count * size].astype(np.float64).reshape(count, size)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-10)), dtype=np.float64)


def check_voice(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.float32], VoiceReport]:
    """Decode ``path``, refuse it with a sentence if unusable, return 24 kHz mono audio."""
    try:
        info = probe(path)
    except NotAudioError:
        # probe's sentence carries libsndfile's, which names the spool path.
        raise NotAudioError(
            "The file is not a recording this app can read; send a WAV, FLAC or OGG file."
        ) from None
    if info.declared_seconds > MAX_SECONDS + 1.0:
        raise VoiceRefusedError(
            f"The recording is {info.declared_seconds:.1f} s long; a voice prompt should be "
            f"{MIN_SECONDS:g} to {MAX_SECONDS:g} seconds of speech.",
            code="voice_too_long",
        )
    try:
        raw, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        raise InvalidAudioError(
            "The recording could not be decoded; it may be damaged or cut short."
        ) from None
    raw = np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=-1.0)
    seconds = raw.shape[0] / rate
    if seconds < MIN_SECONDS:
        raise VoiceRefusedError(
            f"The recording is only {seconds:.1f} s long; a voice prompt needs at least "
            f"{MIN_SECONDS:g} seconds of speech (10 to 20 s work best).",
            code="voice_too_short",
        )
    if seconds > MAX_SECONDS:
        raise VoiceRefusedError(
            f"The recording is {seconds:.1f} s long; keep a voice prompt to at most "
            f"{MAX_SECONDS:g} seconds.",
            code="voice_too_long",
        )
    clipped = float(np.mean(np.abs(raw) >= CLIP_LEVEL)) if raw.size else 0.0
    if clipped > MAX_CLIPPED_SHARE:
        raise VoiceRefusedError(
            f"The recording is clipped ({clipped * 100:.1f}% of its samples at full scale); "
            "record again with the microphone level lower.",
            code="voice_clipped",
        )
    mono = resample(to_mono(raw), rate, SAMPLE_RATE)
    active_s = float(np.sum(_frame_levels(mono, SAMPLE_RATE) > ACTIVE_LEVEL_DBFS)) * (
        ACTIVE_FRAME_S
    )
    if active_s < MIN_ACTIVE_S:
        raise VoiceRefusedError(
            f"The recording is nearly silent ({active_s:.1f} s above the noise floor); speak "
            f"for at least {MIN_SECONDS:g} seconds, close to the microphone.",
            code="voice_silent",
        )
    # Imported here: pyloudnorm brings scipy, a second of start-up the app should not pay.
    import pyloudnorm

    meter = pyloudnorm.Meter(SAMPLE_RATE)
    loudness = float(meter.integrated_loudness(mono.astype(np.float64)))
    if not np.isfinite(loudness):
        raise VoiceRefusedError(
            "The recording is nearly silent; speak closer to the microphone.", code="voice_silent"
        )
    gain = 10.0 ** ((TARGET_LUFS - loudness) / 20.0)
    out = mono.astype(np.float64) * gain
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > PEAK_CEILING:
        # Loud peaks in a quiet recording: keep them below full scale rather than clip them;
        # the prompt is then a little quieter than -24 LUFS, which the model evens out anyway.
        out *= PEAK_CEILING / peak
    report = VoiceReport(seconds, int(rate), int(raw.shape[1]), loudness, active_s)
    return np.asarray(out, dtype=np.float32), report


def prepare_voice(
    source: str | os.PathLike[str], destination: str | os.PathLike[str]
) -> VoiceReport:
    """Check ``source`` and write the prepared prompt to ``destination`` (16-bit WAV), fsynced."""
    pcm, report = check_voice(source)
    write_wav(destination, pcm, SAMPLE_RATE)
    fsync_file(Path(destination))
    return report
