"""When a block of a sound stream was captured or is heard, on the monotonic clock.

Counting samples alone is not a clock: an ALSA underrun, a stream that PortAudio restarts or a
block lost to a stalled loop skips time on one side only, and a recording built from counts
drifts by seconds. PortAudio's own ADC/DAC times are no better through the ALSA PulseAudio
plugin: they run ahead of the samples by hundreds of milliseconds while a stream starts. And
"now" in a callback is read after it waited for the GIL, and the PulseAudio plugin delivers
microphone blocks a whole block late for seconds at a time.

So a stream is stamped by its sample count, anchored to when its callbacks run. A callback is
never early, only late, so the earliest arrival is the stream's true pace, and lateness alone
changes nothing. The anchor moves later only when time was really skipped: the host reported
an underrun or overflow, callbacks run far behind (SKIP_S) several times in a row, or the
earliest arrival over a long window has crept up (a sound card slightly slower than the
system clock).
"""

from __future__ import annotations

import collections

SKIP_S = 0.25  # later than any block of lateness the PulseAudio plugin shows
CONFIRM = 3
WINDOW_S = 10.0
CREEP_S = 0.002


class SampleClock:
    """Stamps consecutive blocks of one stream; called from its audio callback only."""

    def __init__(self, rate: int, latency_s: float = 0.0) -> None:
        self.rate = rate
        self.latency_s = latency_s  # device latency: capture before, or playback after, a callback
        self._count = 0  # samples stamped so far
        # (count, observed anchor), increasing in both: the sliding minimum of the window.
        self._minima: collections.deque[tuple[int, float]] = collections.deque()
        self._window_start = 0
        self._late: list[float] = []
        self._anchor: float | None = None
        self.skips = 0

    def stamp(
        self, arrival: float, frames: int, *, completed: bool, skipped: bool = False
    ) -> float:
        """The time of the block's first sample, before latency. ``arrival``: when the callback
        ran; ``completed``: the block was complete then (input), else asked for then (output);
        ``skipped``: the host said time was lost before this block."""
        first = self._count
        self._count += frames
        observed = arrival - (self._count if completed else first) / self.rate
        anchor = self._anchor
        if skipped or anchor is None:
            self._restart(first, observed)
        elif observed <= anchor:
            self._anchor = observed  # the earliest arrival yet: the true pace
            self._late.clear()
        elif observed > anchor + SKIP_S:
            self._late.append(observed)
            if len(self._late) >= CONFIRM:
                self._restart(first, min(self._late))
        else:
            self._late.clear()
        self._slide(first, observed)
        assert self._anchor is not None
        return self._anchor + first / self.rate

    def _restart(self, first: int, observed: float) -> None:
        if self._anchor is not None:
            self.skips += 1
        self._anchor = observed
        self._late.clear()
        self._minima.clear()
        self._window_start = first

    def _slide(self, first: int, observed: float) -> None:
        minima = self._minima
        while minima and minima[-1][1] >= observed:
            minima.pop()
        minima.append((first, observed))
        horizon = first - round(WINDOW_S * self.rate)
        while minima[0][0] < horizon:
            minima.popleft()
        if horizon >= self._window_start and self._anchor is not None:
            # A whole window, and never as early as the anchor: the card runs slow; follow it.
            lowest = minima[0][1]
            if lowest > self._anchor + CREEP_S:
                self._anchor = lowest
