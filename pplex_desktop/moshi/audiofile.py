"""Read and write audio files: any rate and channel count in, 24 kHz mono float PCM out.

Reading is streamed in blocks so that an hour-long upload never sits whole in memory, and the
length limit is checked against frames actually decoded, not the header's claim.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from pplex_desktop.core.errors import (
    PayloadTooLargeError,
    UnprocessableError,
    UnsupportedMediaError,
)
from pplex_desktop.moshi.codec import SAMPLE_RATE, Pcm

ACCEPTED_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "FLAC", "OGG"})
MAX_CHANNELS = 32
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
_BLOCK_FRAMES = 65_536


class NotAudioError(UnsupportedMediaError):
    code = "not_audio"


class EmptyAudioError(NotAudioError):
    code = "empty_file"
    status = 422


def _libsndfile_reason(exc: Exception) -> str:
    """libsndfile's own words without the file's path (on a desktop, the user's home folder)."""
    reason = getattr(exc, "error_string", None)
    if not isinstance(reason, str) or not reason.strip():
        reason = type(exc).__name__
    reason = reason.strip().rstrip(".")
    return reason[:1].lower() + reason[1:]


class InvalidAudioError(UnprocessableError):
    code = "invalid_audio"


class AudioTooLongError(PayloadTooLargeError):
    code = "audio_too_long"


@dataclass(frozen=True, slots=True)
class AudioInfo:
    format: str
    subtype: str
    sample_rate: int
    channels: int
    declared_frames: int

    @property
    def declared_seconds(self) -> float:
        return self.declared_frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read and sanity-check a file's header; raise a user-facing error if it is not usable."""
    name = Path(path).name
    try:
        found = os.stat(path)
    except OSError:
        empty = False
    else:  # a pipe or device reports no size and may still hold audio
        empty = stat.S_ISREG(found.st_mode) and found.st_size == 0
    if empty:
        raise EmptyAudioError(f"'{name}' is empty: the file holds no bytes.")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise NotAudioError(
            f"'{name}' is not an audio file this app can read (WAV, FLAC or OGG): "
            f"{_libsndfile_reason(exc)}."
        ) from None
    if info.format not in ACCEPTED_FORMATS:
        raise NotAudioError(f"'{name}' is {info.format_info}; send WAV, FLAC or OGG audio instead.")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"'{name}' declares a sample rate of {info.samplerate} Hz; "
            f"rates from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz are supported."
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise InvalidAudioError(
            f"'{name}' declares {info.channels} channels; 1 to {MAX_CHANNELS} are supported."
        )
    return AudioInfo(info.format, info.subtype, info.samplerate, info.channels, info.frames)


def to_mono(block: npt.NDArray[np.float32]) -> Pcm:
    """Average the channels of a (frames, channels) block into one channel."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return np.asarray(block.mean(axis=1, dtype=np.float32), dtype=np.float32)


def resample(pcm: Pcm, source_rate: int, target_rate: int = SAMPLE_RATE) -> Pcm:
    if source_rate == target_rate:
        return pcm.astype(np.float32, copy=False)
    out = soxr.resample(pcm.astype(np.float32, copy=False), source_rate, target_rate, "HQ")
    return np.asarray(out, dtype=np.float32)


def iter_mono(
    path: str | os.PathLike[str],
    *,
    target_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    info: AudioInfo | None = None,
) -> Iterator[Pcm]:
    """Yield mono float32 blocks at ``target_rate``; stop with an error past ``max_seconds``."""
    info = info or probe(path)
    name = Path(path).name
    max_frames = None if max_seconds is None else int(max_seconds * info.sample_rate)
    stream = (
        None
        if info.sample_rate == target_rate
        else soxr.ResampleStream(info.sample_rate, target_rate, 1, dtype="float32", quality="HQ")
    )
    decoded = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                block = handle.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                last = block.shape[0] < _BLOCK_FRAMES
                decoded += block.shape[0]
                if max_frames is not None and decoded > max_frames:
                    raise AudioTooLongError(
                        f"'{name}' is longer than the limit of {max_seconds:g} seconds."
                    )
                mono = np.nan_to_num(to_mono(block), nan=0.0, posinf=1.0, neginf=-1.0)
                out = mono if stream is None else stream.resample_chunk(mono, last=last)
                if len(out):
                    yield np.asarray(out, dtype=np.float32)
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InvalidAudioError(
            f"'{name}' could not be decoded: {_libsndfile_reason(exc)}."
        ) from None
    if decoded == 0:
        raise InvalidAudioError(f"'{name}' holds no audio frames.")


def read_mono(
    path: str | os.PathLike[str],
    *,
    target_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
) -> Pcm:
    blocks = list(iter_mono(path, target_rate=target_rate, max_seconds=max_seconds))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def write_wav(
    path: str | os.PathLike[str],
    pcm: npt.NDArray[np.float32],
    sample_rate: int = SAMPLE_RATE,
    subtype: str = "PCM_16",
) -> None:
    """Write mono (n,) or multi-channel (n, channels) float audio, clipped to [-1, 1]."""
    data = np.clip(np.nan_to_num(pcm, nan=0.0), -1.0, 1.0)
    sf.write(str(path), data, sample_rate, subtype=subtype, format="WAV")
