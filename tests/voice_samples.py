"""Recordings for voice prompt tests: speech-like, silent, clipped, as WAV bytes."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import soundfile as sf


def speechlike(
    seconds: float, rate: int = 24_000, *, level: float = 0.3
) -> npt.NDArray[np.float32]:
    """A voiced buzz (140 Hz and harmonics) in 4 Hz syllables with short pauses."""
    t = np.arange(int(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    pauses = (np.floor(t / 1.5) % 4 != 3).astype(np.float64)  # every fourth 1.5 s is quiet
    signal = buzz * syllables * pauses
    return np.asarray(level * signal / np.max(np.abs(signal)), dtype=np.float32)


def wav_bytes(pcm: npt.NDArray[np.float32], rate: int = 24_000, subtype: str = "PCM_16") -> bytes:
    out = io.BytesIO()
    sf.write(out, pcm, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def clipped(seconds: float, rate: int = 24_000) -> npt.NDArray[np.float32]:
    """Speech driven far past full scale, as an overloaded microphone records it."""
    return np.asarray(np.clip(speechlike(seconds, rate, level=1.0) * 4.0, -1, 1), np.float32)
