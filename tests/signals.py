"""Test signals and measurements shared by the tiers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.float32]


def tone(freq: float, seconds: float, rate: int = 24_000, amplitude: float = 0.5) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(pcm: npt.ArrayLike, rate: int = 24_000) -> float:
    x = np.asarray(pcm, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(pcm: npt.ArrayLike) -> float:
    x = np.asarray(pcm, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0
