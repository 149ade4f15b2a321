"""Cut a PCM stream of any block size into the model's 1920-sample frames."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pplex_desktop.moshi.codec import FRAME_SAMPLES, Pcm


class Framer:
    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self._frame = frame_samples
        self._buffer = np.zeros(0, dtype=np.float32)

    @property
    def pending(self) -> int:
        return int(self._buffer.shape[0])

    def push(self, pcm: npt.ArrayLike) -> list[Pcm]:
        block = np.asarray(pcm, dtype=np.float32).reshape(-1)
        data = np.concatenate((self._buffer, block)) if self._buffer.size else block
        count = data.shape[0] // self._frame
        frames = [data[i * self._frame : (i + 1) * self._frame].copy() for i in range(count)]
        self._buffer = data[count * self._frame :].copy()
        return frames

    def flush(self) -> Pcm | None:
        """Return what is left, padded with silence to a whole frame, or None if nothing is."""
        if not self._buffer.size:
            return None
        frame = np.zeros(self._frame, dtype=np.float32)
        frame[: self._buffer.shape[0]] = self._buffer
        self._buffer = np.zeros(0, dtype=np.float32)
        return frame
