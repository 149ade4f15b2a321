"""How late the model's frames arrive, measured the way WebRTC's NetEQ does.

The model sends audio at the pace it speaks, so a frame's arrival time minus the duration of
everything sent before it (its "relative delay") would be constant on a perfect link. Each
arrival's delay is taken relative to the fastest arrival of the last couple of seconds (short,
so that clock drift or a one-off shift of the whole stream is forgotten quickly), and the
jitter is a high quantile of those deviations over a longer window.

A quantile ignores rare spikes, and spikes that recur (a link that holds frames every few
seconds and releases them together) cause an underrun each time. So deviations far above the
quantile are remembered as peaks; once two are seen within the peak window, or one ends an
underrun, the largest of them is covered too, until the peaks stop.
"""

from __future__ import annotations

from collections import deque

import numpy as np

REFERENCE_S = 2.0
WINDOW_S = 10.0
QUANTILE = 0.95  # one stall (a few frames held together) stays above it: a peak
PEAK_WINDOW_S = 30.0
PEAK_ABOVE_S = 0.02  # a deviation this far above the quantile is a peak
PEAK_EVENT_S = 1.0  # peaks closer than this are one event


class ArrivalJitter:
    """Fed every arrival (time on an injected clock, samples); not thread-safe: one caller."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self.reset()

    def reset(self) -> None:
        """A new stream: forget everything (after the buffer was cleared)."""
        self._sent = 0  # samples that arrived so far
        # (time, relative delay) with increasing delays: the front is the window's minimum.
        self._reference: deque[tuple[float, float]] = deque()
        self._deviations: deque[tuple[float, float]] = deque()
        self._peaks: deque[tuple[float, float]] = deque()
        self._forced_peak_until = -np.inf
        self._quantile = 0.0
        self.last_deviation = 0.0

    def arrive(self, now: float, samples: int, *, after_underrun: bool = False) -> float:
        """Record an arrival; return its deviation (s) from the fastest one lately."""
        self._sent += samples
        delay = now - self._sent / self.rate
        ref = self._reference
        while ref and ref[-1][1] >= delay:
            ref.pop()
        ref.append((now, delay))
        while ref[0][0] < now - REFERENCE_S:
            ref.popleft()
        deviation = delay - ref[0][1]
        self.last_deviation = deviation
        devs = self._deviations
        devs.append((now, deviation))
        while devs[0][0] < now - WINDOW_S:
            devs.popleft()
        self._quantile = float(np.quantile([d for _, d in devs], QUANTILE))
        peaks = self._peaks
        if after_underrun or deviation > self._quantile + PEAK_ABOVE_S:
            if peaks and peaks[-1][0] > now - PEAK_EVENT_S:
                # Frames held together are one event, not several peaks.
                peaks[-1] = (peaks[-1][0], max(peaks[-1][1], deviation))
            else:
                peaks.append((now, deviation))
            if after_underrun:
                # The frame that ended an underrun is proof enough: cover it at once.
                self._forced_peak_until = now + PEAK_WINDOW_S
        while peaks and peaks[0][0] < now - PEAK_WINDOW_S:
            peaks.popleft()
        return deviation

    def jitter_s(self, now: float) -> float:
        """The deviation to cover: the quantile, or the largest recurring peak."""
        peaks = self._peaks
        if len(peaks) >= 2 or (peaks and now < self._forced_peak_until):
            return max(self._quantile, *(d for _, d in peaks))
        return self._quantile
