"""Level meters: RMS and peak over whatever audio went by since the last reading."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


class LevelMeter:
    def __init__(self) -> None:
        self._energy = 0.0
        self._count = 0
        self._peak = 0.0

    def add(self, pcm: npt.NDArray[np.float32]) -> None:
        if pcm.size:
            self._energy += float(np.dot(pcm, pcm))
            self._count += int(pcm.size)
            self._peak = max(self._peak, float(np.max(np.abs(pcm))))

    def read(self) -> tuple[float, float]:
        """Return (rms, peak), both linear in [0, 1], and start a new window."""
        rms = math.sqrt(self._energy / self._count) if self._count else 0.0
        peak = self._peak
        self._energy, self._count, self._peak = 0.0, 0, 0.0
        return rms, peak


def to_dbfs(level: float, floor: float = -90.0) -> float:
    """A linear level in dB relative to full scale, clamped at ``floor`` for silence."""
    return max(20.0 * math.log10(level), floor) if level > 0 else floor
