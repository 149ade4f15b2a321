"""The playback jitter buffer between the network (asyncio loop) and the speaker callback.

Model audio arrives in 80 ms frames whose arrival times wobble with the network and the model;
the sound card wants exactly N samples at a steady pace. The buffer absorbs the wobble with a
small target depth, and it keeps the delay from creeping up: when a late burst leaves more than
target + tolerance queued, the oldest audio is dropped. A conversation that slowly drifts later
and later is worse than an audible skip.

A burst smaller than the tolerance (two frames at once while the streams start) would otherwise
stay for good: one frame, 80 ms, of extra delay for the whole conversation, in about half the
calls measured by bench/mouth_to_ear.py. So the buffer also watches how far above the target each
arrival lifts it: if that surplus stayed above a small margin for a whole settle window, it is
standing delay, not cushion, and the smallest surplus of the window is dropped once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE

DEFAULT_TARGET_MS = 160.0  # two model frames
DEFAULT_TOLERANCE_MS = 80.0  # one model frame: a normal push must never trigger a drop
SETTLE_WINDOW_MS = 2_000.0  # how long a surplus must stand before it is dropped
SETTLE_MARGIN_MS = 20.0  # surplus smaller than this is left alone (not worth a skip)
MIN_TARGET_MS = 20.0
MAX_TARGET_MS = 2_000.0


@dataclass(frozen=True, slots=True)
class JitterStats:
    depth_ms: float
    target_ms: float
    underruns: int
    dropped_samples: int
    played_samples: int
    sample_rate: int
    trims: int = 0  # times a standing surplus was dropped (see the module's docstring)

    @property
    def dropped_ms(self) -> float:
        return 1000.0 * self.dropped_samples / self.sample_rate


class JitterBuffer:
    """A preallocated ring of float32 samples; ``push`` from the loop, ``pull_into`` from audio.

    The lock is held only for index arithmetic and at most four slice copies, so the audio
    callback never waits for more than a few microseconds.
    """

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        target_ms: float = DEFAULT_TARGET_MS,
        tolerance_ms: float = DEFAULT_TOLERANCE_MS,
        settle: bool = True,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError("The sample rate must be positive.")
        if tolerance_ms < 0:
            raise ValueError("The tolerance cannot be negative.")
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._tolerance = self._ms_to_samples(tolerance_ms)
        # Room for the largest target, its tolerance and a burst of frames on top.
        self._capacity = self._ms_to_samples(MAX_TARGET_MS) + self._tolerance + 8 * FRAME_SAMPLES
        self._ring = np.zeros(self._capacity, dtype=np.float32)
        self._read = 0
        self._depth = 0
        self._target = 0
        self.target_ms = target_ms
        self._playing = False
        self._underruns = 0
        self._dropped = 0
        self._played = 0
        # Samples that ever left the buffer, played or dropped: the stream position at the
        # read index, so a caller can tell which pushed sample a pull played.
        self._consumed = 0
        # Off for a caller that queues ahead on purpose and wants every sample (a file player).
        self._settle_window = self._ms_to_samples(SETTLE_WINDOW_MS) if settle else 0
        self._settle_margin = self._ms_to_samples(SETTLE_MARGIN_MS)
        self._low_water: int | None = None  # least depth above target after an arrival
        self._window_pushed = 0  # samples pushed since the window began
        self._trimmed = 0
        # Read by the audio thread without the lock: a float assignment is atomic in CPython.
        self.gain = 1.0

    def _ms_to_samples(self, ms: float) -> int:
        return round(ms * self.sample_rate / 1000.0)

    @property
    def target_ms(self) -> float:
        return 1000.0 * self._target / self.sample_rate

    @target_ms.setter
    def target_ms(self, value: float) -> None:
        if not MIN_TARGET_MS <= value <= MAX_TARGET_MS:
            raise ValueError(
                f"The jitter buffer target must be between {MIN_TARGET_MS:g} and "
                f"{MAX_TARGET_MS:g} ms, not {value:g}."
            )
        with self._lock:
            self._target = self._ms_to_samples(value)

    @property
    def depth(self) -> int:
        """Samples queued for playback."""
        with self._lock:
            return self._depth

    def push(self, pcm: npt.ArrayLike) -> None:
        """Queue model audio; drop the oldest if the queue got longer than target + tolerance."""
        block = np.asarray(pcm, dtype=np.float32).reshape(-1)
        n = block.shape[0]
        if n == 0:
            return
        with self._lock:
            self._settle(n)
            if n > self._capacity:
                self._dropped += n - self._capacity
                self._consumed += n - self._capacity
                block = block[n - self._capacity :]
                n = self._capacity
            overflow = self._depth + n - self._capacity
            if overflow > 0:
                self._discard(overflow)
            write = (self._read + self._depth) % self._capacity
            first = min(n, self._capacity - write)
            self._ring[write : write + first] = block[:first]
            if first < n:
                self._ring[: n - first] = block[first:]
            self._depth += n
            excess = self._depth - (self._target + self._tolerance)
            if excess > 0:
                # Back to the target, not just under the limit, so that a clock drift between
                # the server and the sound card causes a rare skip rather than a constant one.
                self._discard(self._depth - self._target)

    def _settle(self, arriving: int) -> None:
        """Before an arrival: track the surplus it leaves, drop one that stood all window."""
        if not self._settle_window:
            return
        if not self._playing:
            # Prebuffering or just ran dry: the depth says nothing about a surplus yet.
            self._low_water, self._window_pushed = None, 0
            return
        surplus = self._depth + arriving - self._target
        low = surplus if self._low_water is None else min(self._low_water, surplus)
        self._low_water = low
        self._window_pushed += arriving
        if self._window_pushed < self._settle_window:
            return
        if low > self._settle_margin:
            self._discard(min(low, self._depth))
            self._trimmed += 1
        self._low_water, self._window_pushed = None, 0

    def _discard(self, count: int) -> None:
        self._read = (self._read + count) % self._capacity
        self._depth -= count
        self._dropped += count
        self._consumed += count

    def pull_into(self, out: npt.NDArray[np.float32]) -> tuple[int, int]:
        """Fill ``out`` (1-D, any stride) with the next samples, or silence; never blocks long.

        Return the stream position (count of samples ever pushed) of ``out[0]`` and how many
        pushed samples were taken; the rest of ``out`` is silence.
        """
        n = out.shape[0]
        with self._lock:
            position = self._consumed
            if not self._playing and self._depth >= self._target:
                self._playing = True
            take = min(n, self._depth) if self._playing else 0
            if take:
                first = min(take, self._capacity - self._read)
                out[:first] = self._ring[self._read : self._read + first]
                if first < take:
                    out[first:take] = self._ring[: take - first]
                self._read = (self._read + take) % self._capacity
                self._depth -= take
                self._played += take
                self._consumed += take
            if self._playing and take < n:
                # Ran dry: count it and wait for the target depth again, so that playback
                # resumes with a cushion instead of stuttering frame by frame.
                self._underruns += 1
                self._playing = False
        if take < n:
            out[take:] = 0.0
        gain = self.gain
        if gain != 1.0 and take:
            out[:take] *= gain
        return position, take

    def pull(self, n: int) -> npt.NDArray[np.float32]:
        """Allocating variant of ``pull_into`` for code that is not an audio callback."""
        out = np.empty(n, dtype=np.float32)
        self.pull_into(out)
        return out

    def clear(self) -> None:
        with self._lock:
            self._consumed += self._depth
            self._read = 0
            self._depth = 0
            self._playing = False
            self._low_water, self._window_pushed = None, 0

    def stats(self) -> JitterStats:
        with self._lock:
            return JitterStats(
                depth_ms=1000.0 * self._depth / self.sample_rate,
                target_ms=1000.0 * self._target / self.sample_rate,
                underruns=self._underruns,
                dropped_samples=self._dropped,
                played_samples=self._played,
                sample_rate=self.sample_rate,
                trims=self._trimmed,
            )
