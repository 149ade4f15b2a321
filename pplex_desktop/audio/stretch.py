"""Making a block of model audio a little longer or shorter without an audible skip.

The adaptive jitter buffer changes its depth by editing the frames it is given, on the loop's
side, never in the audio callback. Shorter: only quiet stretches (pauses between words) lose
samples, joined by a short raised-cosine crossfade, so speech is never cut. Longer: a quiet
stretch is repeated if there is one; otherwise one pitch period of the voice (the lag at which
the signal best matches itself) is repeated, the way speech codecs conceal a late packet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.float32]

CROSSFADE_S = 0.0025  # short enough to keep a word's onset, long enough to hide the joint
WINDOW_S = 0.005  # energy is judged per 5 ms window
QUIET_RMS = 0.02  # about -34 dBFS: quieter than any word, louder than the model's silence
QUIET_FRACTION = 0.1  # or a tenth of the loudness heard lately, for a quiet voice
QUIET_FLOOR_RMS = 0.002  # but never less: after a silent minute, silence is still quiet
MIN_PITCH_S = 0.0025  # 400 Hz
MAX_PITCH_S = 0.015  # 67 Hz


@dataclass(frozen=True, slots=True)
class Edit:
    """The edited block and how many samples it gained (positive) or lost (negative)."""

    pcm: Pcm
    change: int
    removed_peak: float = 0.0  # the loudest sample taken out (to prove speech was spared)


class Stretcher:
    """Edits blocks at one sample rate; remembers how loud the audio has been lately."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self.crossfade = max(2, round(CROSSFADE_S * sample_rate))
        self.window = max(4, round(WINDOW_S * sample_rate))
        ramp = (np.arange(self.crossfade, dtype=np.float32) + 0.5) / self.crossfade
        self._fade_in = (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)
        self._fade_out = (1.0 - self._fade_in).astype(np.float32)
        self._min_lag = max(2, round(MIN_PITCH_S * sample_rate))
        self._max_lag = round(MAX_PITCH_S * sample_rate)
        self._loud = 0.0  # a decaying peak of the per-window loudness

    def _quiet_runs(self, x: Pcm) -> list[tuple[int, int]]:
        """Stretches [start, end) made of whole windows below the quiet threshold."""
        w = self.window
        count = x.shape[0] // w
        if count == 0:
            return []
        rms = np.sqrt(np.mean(np.square(x[: count * w].reshape(count, w), dtype=np.float64), 1))
        self._loud = max(float(rms.max()), 0.9 * self._loud)
        threshold = max(QUIET_FLOOR_RMS, min(QUIET_RMS, QUIET_FRACTION * self._loud))
        # A window whose loudest sample is loud is not quiet, whatever its mean (a click).
        peaks = np.abs(x[: count * w].reshape(count, w)).max(1)
        quiet = (rms < threshold) & (peaks < 4 * threshold)
        runs: list[tuple[int, int]] = []
        start: int | None = None
        for i, q in enumerate(quiet.tolist()):
            if q and start is None:
                start = i
            elif not q and start is not None:
                runs.append((start * w, i * w))
                start = None
        if start is not None:
            runs.append((start * w, count * w))
        return runs

    def shorten(self, x: Pcm, want: int) -> Edit:
        """Remove up to ``want`` samples, only inside quiet stretches; maybe none."""
        xf = self.crossfade
        if want <= 0:
            return Edit(x, 0)
        pieces: list[Pcm] = []
        cursor = 0
        removed = 0
        peak = 0.0
        for start, end in self._quiet_runs(x):
            room = end - start - 2 * xf  # keep a crossfade's length of the run on each side
            cut = min(room, want - removed)
            if cut <= 0:
                continue
            a = start + xf // 2
            b = a + cut
            peak = max(peak, float(np.abs(x[a : b + xf]).max()))
            pieces.append(x[cursor:a])
            pieces.append(x[a : a + xf] * self._fade_out + x[b : b + xf] * self._fade_in)
            cursor = b + xf
            removed += cut
            if removed >= want:
                break
        if not removed:
            return Edit(x, 0)
        pieces.append(x[cursor:])
        return Edit(np.concatenate(pieces).astype(np.float32, copy=False), -removed, peak)

    def lengthen(self, x: Pcm, want: int) -> Edit:
        """Add about ``want`` samples: repeat a quiet stretch, else pitch periods of the voice."""
        xf = self.crossfade
        if want <= 0 or x.shape[0] < 2 * xf + self._min_lag:
            return Edit(x, 0)
        for start, end in self._quiet_runs(x):
            add = min(want, end - start - xf)
            if add >= self._min_lag:
                return Edit(self._repeat(x, start, add), add)
        out = x
        added = 0
        for _ in range(4):  # a few periods per block at most: each one is a tiny stretch
            lag = self._best_lag(out)
            if lag is None or added + lag > want + lag // 2:
                break
            out = self._repeat(out, (out.shape[0] - lag - xf) // 2, lag)
            added += lag
        return Edit(out, added)

    def _repeat(self, x: Pcm, at: int, lag: int) -> Pcm:
        """x[:at+lag], then x from ``at`` again; the joint is crossfaded."""
        xf = self.crossfade
        joint = x[at + lag : at + lag + xf] * self._fade_out + x[at : at + xf] * self._fade_in
        return np.concatenate((x[: at + lag], joint, x[at + xf :])).astype(np.float32, copy=False)

    def _best_lag(self, x: Pcm) -> int | None:
        """The lag, in the voice's pitch range, at which the middle of x best matches itself."""
        n = x.shape[0]
        xf = self.crossfade
        span = max(xf, self.window)
        max_lag = min(self._max_lag, (n - span) // 2)
        if max_lag < self._min_lag:
            return None
        at = (n - max_lag - span) // 2
        ref = x[at : at + span].astype(np.float64)
        segs = np.lib.stride_tricks.sliding_window_view(
            x[at + self._min_lag : at + max_lag + span].astype(np.float64), span
        )
        energy = np.sqrt(float(np.dot(ref, ref)) * np.einsum("ij,ij->i", segs, segs)) + 1e-12
        return self._min_lag + int(np.argmax(segs @ ref / energy))
