"""Acoustic echo cancellation on the Talk page's microphone, so speakers work without headphones.

On a laptop's own speakers the microphone hears the model; the model then hears itself, and
answers itself. WebRTC's AEC3 (through livekit's AudioProcessingModule) removes that echo when
it is given the far end: exactly what the speaker played (after ducking and mute), 10 ms at a
time, just before the microphone's 10 ms that were captured at the same moment.

Both sides are stamped on one monotonic clock (stamps.py): a played block carries the time it
is heard, a captured block the time it was captured. So the far end is kept on that timeline,
and for every 10 ms of microphone captured at time t the canceller is first given what was
heard at time t. What remains for AEC3's own delay estimator is only the acoustic path (a few
ms on a laptop, tens through a room), not the buffers of two streams that start and skip on
their own. Everything here runs on the conversation's loop, never in a PortAudio callback.

Once AEC3 has learned the room, what it is given must not move: a stamp that turns out a few
milliseconds early (a sound clock finding its true pace, stamps.py) changes nothing real, but
following it shifts the far end against the microphone, and AEC3 lets the echo through while it
learns the room again (about 35 dB less cancelled for 1.5 s after a 7.5 ms correction). So both
sides run on by their sample counts and follow their stamps only where time was really lost
(a stamp later than the count: an underrun, an overflow, a restart), before the speaker first
played sound (nothing learned yet), or where they are far off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pplex_desktop.core.errors import PplexError
from pplex_desktop.moshi.codec import SAMPLE_RATE

_log = logging.getLogger(__name__)
Pcm = npt.NDArray[np.float32]
CHUNK = SAMPLE_RATE // 100  # AEC3 works on 10 ms frames
FAR_HISTORY_S = 2.0  # far end kept for the microphone to catch up with
# Stamps this much later than the sample count say time was lost (or a clock creeps): follow.
LOST_S = 0.001
# Stamps earlier than the count are a clock finding its true pace: PulseAudio's first seconds
# come a block (80-90 ms) late, later corrections are a few ms. AEC3 copes with the offset kept
# (40 dB cancelled after an 85 ms one, 6 dB for 1.5 s when it was followed); past this much,
# something else is wrong, and the stamps are followed.
FAR_OFF_S = 0.25
AUDIBLE = 1e-4  # the far end carried sound: from then on AEC3 is learning the room


class SteadyTime:
    """The times of a stream's consecutive blocks as AEC3 is to see them: by sample count from
    the last time the stamps were followed; followed again only past LOST_S later or FAR_OFF_S
    earlier, or always while ``settled`` is False (nothing learned yet, nothing to lose)."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self.rate = rate
        self._next: float | None = None

    def at(self, t: float, n: int, *, settled: bool) -> float:
        """The time to use for a block of ``n`` samples stamped ``t``."""
        expected = self._next
        if expected is None or not settled or t > expected + LOST_S or t < expected - FAR_OFF_S:
            expected = t
        self._next = expected + n / self.rate
        return expected


@dataclass(frozen=True, slots=True)
class EchoSettings:
    """What the Talk page offers: Echo cancellation (on), Noise suppression (off)."""

    cancel: bool = True
    noise_suppression: bool = False

    @property
    def processing(self) -> bool:
        return self.cancel or self.noise_suppression


class FarEnd:
    """What the speaker played, on the monotonic timeline: a ring of samples indexed by the
    time they are heard, silence wherever nothing was played."""

    def __init__(self, history_s: float = FAR_HISTORY_S, rate: int = SAMPLE_RATE) -> None:
        self.rate = rate
        self._size = round(history_s * rate)
        self._ring = np.zeros(self._size, dtype=np.float32)
        self._end: int | None = None  # one past the newest sample written, in absolute samples

    def write(self, pcm: Pcm, t: float) -> None:
        start = round(t * self.rate)
        n = pcm.shape[0]
        if n == 0:
            return
        if self._end is not None and start > self._end:
            self._zero(self._end, min(start, self._end + self._size))
        if n > self._size:
            pcm, start, n = pcm[-self._size :], start + n - self._size, self._size
        i = start % self._size
        first = min(n, self._size - i)
        self._ring[i : i + first] = pcm[:first]
        self._ring[: n - first] = pcm[first:]
        self._end = start + n if self._end is None else max(self._end, start + n)

    def _zero(self, a: int, b: int) -> None:
        for k in range(a, b, self._size):
            lo, hi = k, min(b, k + self._size)
            i, n = lo % self._size, hi - lo
            first = min(n, self._size - i)
            self._ring[i : i + first] = 0.0
            self._ring[: n - first] = 0.0

    def read(self, t: float, n: int) -> Pcm:
        """The ``n`` samples heard from time ``t`` on; silence where none are known."""
        out = np.zeros(n, dtype=np.float32)
        if self._end is None:
            return out
        start = round(t * self.rate)
        lo, hi = max(start, self._end - self._size), min(start + n, self._end)
        if hi <= lo:
            return out
        idx = np.arange(lo, hi) % self._size
        out[lo - start : hi - start] = self._ring[idx]
        return out


class EchoCanceller:
    """Microphone in, microphone without the speaker's echo out, in blocks of any length.

    Output lags input by less than 10 ms (the part of a block that does not fill a frame waits
    for the next block); ``process`` returns the capture time of its first sample.
    """

    def __init__(self, settings: EchoSettings, apm: Any | None = None) -> None:
        self.settings = settings
        # Headphones: no processing at all (and no 10 ms of waiting), only the detector.
        self._apm = apm if apm is not None or not settings.processing else _new_apm(settings)
        self.far = FarEnd()
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_t = 0.0
        self.detector = EchoDetector()
        self._far_time = SteadyTime()
        self._near_time = SteadyTime()
        self._far_heard = False  # the speaker played sound: AEC3 has something to learn from

    def play(self, pcm: Pcm, t: float) -> None:
        """A block the speaker played (after ducking and mute), heard from time ``t``."""
        block = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if not block.size:
            return
        settled = self._far_heard
        self._far_heard = self._far_heard or float(np.max(np.abs(block))) > AUDIBLE
        self.far.write(block, self._far_time.at(t, block.shape[0], settled=settled))

    def process(self, pcm: Pcm, t: float) -> tuple[Pcm, float]:
        """Cancel the echo in a microphone block captured from time ``t``."""
        block = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if self._apm is None:
            self._watch(block, t)
            return block, t
        # The far end is read at the steady time; the time returned stays the stamp's, which
        # the recording and the delay shown use.
        steady = self._near_time.at(t, block.shape[0], settled=self._far_heard)
        far_start = steady - self._pending.shape[0] / SAMPLE_RATE
        if not self._pending.size:
            self._pending_t = t
        data = np.concatenate((self._pending, block)) if self._pending.size else block
        whole = (data.shape[0] // CHUNK) * CHUNK
        out = np.empty(whole, dtype=np.float32)
        start_t = self._pending_t
        for k in range(0, whole, CHUNK):
            far = self.far.read(far_start + k / SAMPLE_RATE, CHUNK)
            near = data[k : k + CHUNK]
            self._apm.process_reverse_stream(_frame(far))
            if self.settings.cancel:
                self._apm.set_stream_delay_ms(0)  # aligned here; the room is AEC3's to find
            frame = _frame(near)
            self._apm.process_stream(frame)
            pcm16 = np.frombuffer(bytes(frame.data), dtype=np.int16)
            out[k : k + CHUNK] = pcm16 / np.float32(32768.0)
            self.detector.add(far, out[k : k + CHUNK])
        self._pending = data[whole:].copy()
        self._pending_t = start_t + whole / SAMPLE_RATE
        return out, start_t

    def _watch(self, block: Pcm, t: float) -> None:
        """Feed the detector whole 10 ms frames of an untouched microphone."""
        if not self._pending.size:
            self._pending_t = t
        data = np.concatenate((self._pending, block)) if self._pending.size else block
        whole = (data.shape[0] // CHUNK) * CHUNK
        for k in range(0, whole, CHUNK):
            at = self._pending_t + k / SAMPLE_RATE
            self.detector.add(self.far.read(at, CHUNK), data[k : k + CHUNK])
        self._pending = data[whole:].copy()
        self._pending_t += whole / SAMPLE_RATE


def _frame(pcm: Pcm) -> Any:
    from livekit import rtc

    pcm16 = np.clip(np.round(pcm * 32767.0), -32768, 32767).astype(np.int16)
    return rtc.AudioFrame(pcm16.tobytes(), SAMPLE_RATE, 1, CHUNK)


class EchoUnavailableError(PplexError):
    code = "echo_cancellation_unavailable"
    status = 503


def _new_apm(settings: EchoSettings) -> Any:
    try:
        from livekit import rtc
    except ImportError:
        raise EchoUnavailableError(
            "Echo cancellation needs the 'livekit' package, which is not installed: reinstall "
            "pplex-desktop, or tick Headphones to talk without it."
        ) from None

    return rtc.AudioProcessingModule(
        echo_cancellation=settings.cancel,
        noise_suppression=settings.noise_suppression,
        high_pass_filter=True,
        auto_gain_control=False,  # the model wants the voice as it is, not pumped up
    )


# -- hearing the echo anyway -----------------------------------------------------------------

WINDOW_FRAMES = 300  # 3 s of 10 ms frames
MAX_LAG_FRAMES = 40  # a room or a sound system delays its echo by up to 400 ms
FAR_ACTIVE_RMS = 10 ** (-40 / 20)
ECHO_CORRELATION = 0.6
ECHO_LEVEL_DB = -25.0  # what reaches the model, against what was played
ECHO_SENTENCE = (
    "The model can hear itself through your microphone, so it may answer its own voice. "
    "Use headphones, or turn on Echo cancellation and lower the speaker volume."
)


class EchoDetector:
    """Says whether the microphone (after cancellation) still carries the speaker's sound: the
    10 ms energy envelopes of both move together at some lag, at a level that matters."""

    def __init__(self) -> None:
        self._far: list[float] = []
        self._near: list[float] = []
        self.heard = False
        self.correlation = 0.0
        self.level_db = -120.0

    def add(self, far: Pcm, near: Pcm) -> None:
        self._far.append(float(np.sqrt(np.mean(far.astype(np.float64) ** 2))))
        self._near.append(float(np.sqrt(np.mean(near.astype(np.float64) ** 2))))
        if len(self._far) >= WINDOW_FRAMES:
            self._judge()
            del self._far[: WINDOW_FRAMES // 2]
            del self._near[: WINDOW_FRAMES // 2]

    def _judge(self) -> None:
        far, near = np.array(self._far), np.array(self._near)
        active = far > FAR_ACTIVE_RMS
        if active.mean() < 0.3:
            return  # the model was mostly quiet: nothing to judge by
        best, best_lag = 0.0, 0
        w = len(far) - MAX_LAG_FRAMES
        a = far[:w] - far[:w].mean()
        na = float(np.linalg.norm(a))
        for lag in range(MAX_LAG_FRAMES + 1):
            b = near[lag : lag + w] - near[lag : lag + w].mean()
            nb = float(np.linalg.norm(b))
            if na > 0 and nb > 0:
                score = float(np.dot(a, b)) / (na * nb)
                if score > best:
                    best, best_lag = score, lag
        f = far[:w][active[:w]]
        n = near[best_lag : best_lag + w][active[:w]]
        level = 10 * np.log10(max(float(np.mean(n**2)), 1e-12) / max(float(np.mean(f**2)), 1e-12))
        self.correlation, self.level_db = best, float(level)
        heard = best > ECHO_CORRELATION and self.level_db > ECHO_LEVEL_DB
        if heard and not self.heard:
            _log.info(
                "The microphone hears the speaker (correlation %.2f at %d ms, %.0f dB).",
                best,
                10 * best_lag,
                self.level_db,
            )
        self.heard = heard
