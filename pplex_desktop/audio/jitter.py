"""The playback jitter buffer between the network (asyncio loop) and the speaker callback.

Model audio arrives in 80 ms frames whose arrival times wobble with the network and the model;
the sound card wants exactly N samples at a steady pace. The buffer absorbs the wobble with a
target depth: playback starts once that much is queued, and starts over at it after running dry.

Adaptive (the default of a conversation), after WebRTC's NetEQ: the target is one frame plus the
arrival jitter measured on the frames themselves (audio/arrival_jitter.py) plus one sound-card
block. It rises at once when the jitter does, or after an underrun, and falls slowly when the
link calms down. The depth follows the target by editing the frames as they arrive, on the
loop's side (audio/stretch.py): a surplus is cut out of pauses between words, a shortfall is
filled by repeating a pause or a pitch period. Speech is never dropped unless a burst exceeds
the target by far (ADAPTIVE_SLACK_MS).

Fixed: the target is what the user chose. A late burst that leaves more than target + tolerance
queued drops the oldest audio, because a conversation that slowly drifts later and later is
worse than an audible skip. A burst smaller than the tolerance (two frames at once while the
streams start) would otherwise stay for good, so the buffer also watches how far above the
target each arrival lifts it: if that surplus stayed above a small margin for a whole settle
window, it is standing delay, not cushion, and the smallest surplus of the window is dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pplex_desktop.audio.arrival_jitter import ArrivalJitter
from pplex_desktop.audio.stretch import Stretcher
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE

DEFAULT_TARGET_MS = 160.0  # the fixed default: two model frames
ADAPTIVE: None = None  # as a target: follow the measured jitter
DEFAULT_TOLERANCE_MS = 80.0  # one model frame: a normal push must never trigger a drop
SETTLE_WINDOW_MS = 2_000.0  # how long a surplus must stand before it is dropped
SETTLE_MARGIN_MS = 20.0  # surplus smaller than this is left alone (not worth a skip)
MIN_TARGET_MS = 20.0
MAX_TARGET_MS = 2_000.0

# Adaptive mode.
INITIAL_TARGET_MS = 120.0  # before anything is measured: a frame and a half
MARGIN_MS = 5.0  # on top of one frame, the jitter and the largest sound-card block
SHRINK_MS_PER_S = 10.0  # how fast the target falls once the link is calm
UNDERRUN_STEP_MS = 20.0  # extra cushion after each underrun, decaying like the target
GROW_DEADBAND_MS = 5.0  # a depth this far below the target is filled in
SHRINK_DEADBAND_MS = 15.0  # a depth this far above it is cut down (pauses only)
MAX_GROW_MS = 20.0  # per 80 ms frame: catch up quickly, but in steps too small to notice
MAX_TRIM_MS = 20.0
ADAPTIVE_SLACK_MS = 500.0  # beyond target + this, even speech is dropped (a huge burst)
PULL_DECAY = 0.995  # per arrival
_DEPTH_HISTORY = 5  # arrivals whose depth is smoothed (sound-card blocks make it wobble)
_SEGMENTS = 256  # edited frames whose stream positions are remembered


@dataclass(frozen=True, slots=True)
class JitterStats:
    depth_ms: float
    target_ms: float
    underruns: int
    dropped_samples: int
    played_samples: int
    sample_rate: int
    trims: int = 0  # fixed: standing surpluses dropped; adaptive: frames shortened
    mode: str = "fixed"  # or "adaptive"
    jitter_ms: float = 0.0  # adaptive: the arrival jitter the target covers
    stretched_samples: int = 0  # adaptive: samples added to fill the buffer up
    trimmed_samples: int = 0  # adaptive: samples cut out of pauses to catch up
    stretches: int = 0  # adaptive: frames lengthened

    @property
    def dropped_ms(self) -> float:
        return 1000.0 * self.dropped_samples / self.sample_rate

    @property
    def stretched_ms(self) -> float:
        return 1000.0 * self.stretched_samples / self.sample_rate

    @property
    def trimmed_ms(self) -> float:
        return 1000.0 * self.trimmed_samples / self.sample_rate

    @property
    def adaptive(self) -> bool:
        return self.mode == "adaptive"


class JitterBuffer:
    """A preallocated ring of float32 samples; ``push`` from the loop, ``pull_into`` from audio.

    The lock is held only for index arithmetic and at most four slice copies, so the audio
    callback never waits for more than a few microseconds. Everything adaptive (measuring,
    deciding, editing frames) runs in ``push``, on the loop, mostly outside the lock.
    """

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        target_ms: float | None = DEFAULT_TARGET_MS,
        tolerance_ms: float = DEFAULT_TOLERANCE_MS,
        settle: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError("The sample rate must be positive.")
        if tolerance_ms < 0:
            raise ValueError("The tolerance cannot be negative.")
        self.sample_rate = sample_rate
        self._clock = clock
        self._lock = threading.Lock()
        self._tolerance = self._ms_to_samples(tolerance_ms)
        self._slack = max(self._tolerance, self._ms_to_samples(ADAPTIVE_SLACK_MS))
        # Room for the largest target, the adaptive slack and a burst of frames on top.
        self._capacity = self._ms_to_samples(MAX_TARGET_MS) + self._slack + 8 * FRAME_SAMPLES
        self._ring = np.zeros(self._capacity, dtype=np.float32)
        self._read = 0
        self._depth = 0
        self._target = 0
        self._adaptive = False
        self._playing = False
        self._underruns = 0
        self._dropped = 0
        self._played = 0
        # Stream positions: pushed samples are counted as given ("in"), ring samples as
        # queued after editing ("out"). Segments map one to the other, so that a caller can
        # still tell which pushed sample a pull played.
        self._pushed = 0
        self._out_total = 0
        self._out_consumed = 0
        self._seg_out = np.zeros(_SEGMENTS, dtype=np.int64)
        self._seg_in = np.zeros(_SEGMENTS, dtype=np.int64)
        self._seg_nin = np.zeros(_SEGMENTS, dtype=np.int64)
        self._seg_nout = np.zeros(_SEGMENTS, dtype=np.int64)
        self._seg_head = 0
        self._seg_count = 0
        # Off for a caller that queues ahead on purpose and wants every sample (a file player).
        self._settle_window = self._ms_to_samples(SETTLE_WINDOW_MS) if settle else 0
        self._settle_margin = self._ms_to_samples(SETTLE_MARGIN_MS)
        self._low_water: int | None = None  # least depth above target after an arrival
        self._window_pushed = 0  # samples pushed since the window began
        self._trimmed = 0
        # Adaptive state: the loop's side, except the few fields the callback also touches.
        self._estimator = ArrivalJitter(sample_rate)
        self._stretcher = Stretcher(sample_rate)
        self._frame = float(FRAME_SAMPLES * sample_rate / SAMPLE_RATE)
        self._target_f = float(self._ms_to_samples(INITIAL_TARGET_MS))
        self._penalty = 0.0  # samples of extra target after underruns
        self._last_arrival: float | None = None
        self._history = np.zeros(_DEPTH_HISTORY, dtype=np.float64)
        self._history_len = 0
        self._edited = 0  # samples added minus removed by edits, to correct the history
        self._jitter_s = 0.0
        self._stretched = 0
        self._stretches = 0
        self._cut = 0
        self._pull_seen = 0  # the largest block the sound card asked for since the last push
        self._pull_block = 0.0  # its decaying maximum (loop side)
        self._underrun_pending = False  # set by the callback, read by the next push
        self._measuring = False  # the jitter is measured from the first playback on
        # Read by the audio thread without the lock: a float assignment is atomic in CPython.
        self.gain = 1.0
        self.set_target_ms(target_ms)

    def _ms_to_samples(self, ms: float) -> int:
        return round(ms * self.sample_rate / 1000.0)

    @property
    def adaptive(self) -> bool:
        return self._adaptive

    @property
    def target_ms(self) -> float:
        """The current target (adaptive or fixed); setting a number makes the buffer fixed."""
        return 1000.0 * self._target / self.sample_rate

    @target_ms.setter
    def target_ms(self, value: float) -> None:
        self.set_target_ms(value)

    def set_target_ms(self, value: float | None) -> None:
        """A fixed target in ms, or ``ADAPTIVE`` (None) to follow the measured jitter."""
        if value is None:
            with self._lock:
                if not self._adaptive:
                    self._adaptive = True
                    self._target_f = float(max(self._target, self._initial_target()))
                    self._target = round(self._target_f)
                    self._history_len = 0
            return
        if not MIN_TARGET_MS <= value <= MAX_TARGET_MS:
            raise ValueError(
                f"The jitter buffer target must be between {MIN_TARGET_MS:g} and "
                f"{MAX_TARGET_MS:g} ms, not {value:g}."
            )
        with self._lock:
            self._adaptive = False
            self._target = self._ms_to_samples(value)

    def _initial_target(self) -> int:
        return self._ms_to_samples(INITIAL_TARGET_MS)

    @property
    def depth(self) -> int:
        """Samples queued for playback."""
        with self._lock:
            return self._depth

    def push(self, pcm: npt.ArrayLike) -> None:
        """Queue model audio. Adaptive: edit it toward the target first. Fixed: drop the oldest
        if the queue got longer than target + tolerance."""
        block = np.asarray(pcm, dtype=np.float32).reshape(-1)
        n = block.shape[0]
        if n == 0:
            return
        adaptive = self._adaptive
        if adaptive:
            block = self._adapt(block)
        m = block.shape[0]
        with self._lock:
            if not adaptive:
                self._settle(m)
            self._add_segment(n, m)
            self._pushed += n
            self._out_total += m
            overflow = self._depth + m - self._capacity
            if overflow > 0:
                from_queue = min(overflow, self._depth)
                self._discard(from_queue)
                rest = overflow - from_queue
                if rest:  # a push longer than the ring: only its newest part fits
                    self._dropped += rest
                    self._out_consumed += rest
                    block = block[rest:]
                    m -= rest
            write = (self._read + self._depth) % self._capacity
            first = min(m, self._capacity - write)
            self._ring[write : write + first] = block[:first]
            if first < m:
                self._ring[: m - first] = block[first:]
            self._depth += m
            limit = self._target + (self._slack if adaptive else self._tolerance)
            if self._depth > limit:
                # Back to the target, not just under the limit, so that a clock drift between
                # the server and the sound card causes a rare skip rather than a constant one.
                self._discard(self._depth - self._target)
                self._history_len = 0

    # Adaptive mode, on the loop's side.

    def _adapt(self, block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        n = block.shape[0]
        now = self._clock()
        with self._lock:
            after_underrun, self._underrun_pending = self._underrun_pending, False
            depth, playing, seen = self._depth, self._playing, self._pull_seen
            self._pull_seen = 0
        # Decays over ten seconds or so: one large request while a stream starts is forgotten.
        self._pull_block = max(float(seen), PULL_DECAY * self._pull_block)
        if playing and not self._measuring:
            # Until the speaker first plays, arrivals say how the streams started (both sound
            # streams open, the server warms up), not how the link behaves: forget them.
            self._estimator.reset()
            self._measuring = True
        deviation = self._estimator.arrive(now, n, after_underrun=after_underrun)
        self._frame += 0.1 * (n - self._frame)
        elapsed = 0.0 if self._last_arrival is None else max(0.0, now - self._last_arrival)
        self._last_arrival = now
        fall = SHRINK_MS_PER_S * self.sample_rate / 1000.0 * elapsed
        if after_underrun:
            self._penalty += self._ms_to_samples(UNDERRUN_STEP_MS)
        else:
            self._penalty = max(0.0, self._penalty - fall)
        self._jitter_s = self._estimator.jitter_s(now)
        wanted = (
            self._frame
            + self._jitter_s * self.sample_rate
            + self._pull_block
            + self._ms_to_samples(MARGIN_MS)
            + self._penalty
        )
        lowest, highest = self._ms_to_samples(MIN_TARGET_MS), self._ms_to_samples(MAX_TARGET_MS)
        wanted = min(float(highest), max(float(lowest), wanted))
        # Up at once, down slowly: a calm minute must not undo what a bad second taught.
        self._target_f = wanted if wanted > self._target_f else max(wanted, self._target_f - fall)
        with self._lock:
            self._target = round(self._target_f)
        if not playing or after_underrun:
            self._history_len = 0  # prebuffering: the depth says nothing about the cushion
            return block
        # What the depth would be had this frame come as early as the fastest one lately.
        virtual = depth + n + deviation * self.sample_rate - self._edited
        self._history = np.roll(self._history, 1)
        self._history[0] = virtual
        self._history_len = min(self._history_len + 1, _DEPTH_HISTORY)
        smoothed = float(np.median(self._history[: self._history_len])) + self._edited
        error = smoothed - self._target_f
        if error < -self._ms_to_samples(GROW_DEADBAND_MS):
            edit = self._stretcher.lengthen(block, min(round(-error), self._max_step(MAX_GROW_MS)))
            if edit.change > 0:
                self._stretched += edit.change
                self._stretches += 1
        elif error > self._ms_to_samples(SHRINK_DEADBAND_MS):
            edit = self._stretcher.shorten(block, min(round(error), self._max_step(MAX_TRIM_MS)))
            if edit.change < 0:
                self._cut -= edit.change
                self._trimmed += 1
        else:
            return block
        self._edited += edit.change
        return edit.pcm

    def _max_step(self, ms: float) -> int:
        return self._ms_to_samples(ms)

    # Fixed mode.

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

    # Both.

    def _add_segment(self, n_in: int, n_out: int) -> None:
        """Remember where pushed samples land in the ring (lock held)."""
        count = self._seg_count
        last = (self._seg_head + count - 1) % _SEGMENTS
        plain = n_in == n_out
        if count and (
            count == _SEGMENTS  # full: fold in, the mapping of this stretch gets coarser
            or (plain and self._seg_nin[last] == self._seg_nout[last])
        ):
            self._seg_nin[last] += n_in
            self._seg_nout[last] += n_out
            return
        slot = (self._seg_head + count) % _SEGMENTS
        self._seg_out[slot] = self._out_total
        self._seg_in[slot] = self._pushed
        self._seg_nin[slot] = n_in
        self._seg_nout[slot] = n_out
        self._seg_count = count + 1

    def _position(self, out: int) -> int:
        """The pushed-sample position of ring sample ``out`` (lock held; no allocation)."""
        head = self._seg_head
        while self._seg_count > 1 and self._seg_out[head] + self._seg_nout[head] <= out:
            head = (head + 1) % _SEGMENTS
            self._seg_count -= 1
        self._seg_head = head
        if not self._seg_count:
            return out
        nout = int(self._seg_nout[head])
        offset = min(out - int(self._seg_out[head]), nout)
        if nout == 0:
            return int(self._seg_in[head])
        return int(self._seg_in[head]) + offset * int(self._seg_nin[head]) // nout

    def _discard(self, count: int) -> None:
        self._read = (self._read + count) % self._capacity
        self._depth -= count
        self._dropped += count
        self._out_consumed += count

    def pull_into(self, out: npt.NDArray[np.float32]) -> tuple[int, int]:
        """Fill ``out`` (1-D, any stride) with the next samples, or silence; never blocks long.

        Return the stream position (count of samples ever pushed) of ``out[0]`` and how many
        pushed samples were taken; the rest of ``out`` is silence.
        """
        n = out.shape[0]
        with self._lock:
            self._pull_seen = max(self._pull_seen, n)
            position = self._position(self._out_consumed)
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
                self._out_consumed += take
            if self._playing and take < n:
                # Ran dry: count it and wait for the target depth again, so that playback
                # resumes with a cushion instead of stuttering frame by frame.
                self._underruns += 1
                self._playing = False
                if self._adaptive:
                    # Resume with more cushion at once, before the next frame even arrives.
                    self._underrun_pending = True
                    self._target = min(
                        self._target + self._ms_to_samples(UNDERRUN_STEP_MS),
                        self._ms_to_samples(MAX_TARGET_MS),
                    )
            taken = self._position(self._out_consumed) - position if take else 0
        if take < n:
            out[take:] = 0.0
        gain = self.gain
        if gain != 1.0 and take:
            out[:take] *= gain
        return position, taken

    def pull(self, n: int) -> npt.NDArray[np.float32]:
        """Allocating variant of ``pull_into`` for code that is not an audio callback."""
        out = np.empty(n, dtype=np.float32)
        self.pull_into(out)
        return out

    def clear(self) -> None:
        with self._lock:
            self._out_consumed += self._depth
            self._read = 0
            self._depth = 0
            self._playing = False
            self._low_water, self._window_pushed = None, 0
            self._history_len = 0
            self._measuring = False

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
                mode="adaptive" if self._adaptive else "fixed",
                jitter_ms=1000.0 * self._jitter_s,
                stretched_samples=self._stretched,
                trimmed_samples=self._cut,
                stretches=self._stretches,
            )
