"""Turn PortAudio's stream times into the monotonic clock the conversation runs on.

A callback gets ``currentTime`` and the ADC/DAC time of its buffer on the stream's own clock,
which is the wall clock with ALSA and a monotonic one elsewhere. Python's own "now" in the
callback is no substitute: it is read after the callback waited for the GIL, tens of
milliseconds late on a busy app. So the stream clock is recognised by comparing it with both
clocks read side by side, and the buffer's time is carried over exactly.
"""

from __future__ import annotations

import time
from typing import Any

# A stream clock this close to a clock of ours is taken to be that clock.
SAME_CLOCK_S = 5.0
# Latency figures beyond this are nonsense from a host API, not a real buffer.
MAX_LATENCY_S = 2.0


def to_monotonic(stream_time: float, current_time: float, wall: float, mono: float) -> float:
    """``stream_time`` (PortAudio's clock) on the monotonic clock read as ``mono``, with the
    wall clock ``wall`` read at the same instant and the stream's ``current_time``."""
    if abs(current_time - wall) < SAME_CLOCK_S:
        return mono + (stream_time - wall)
    if abs(current_time - mono) < SAME_CLOCK_S:
        return stream_time
    # An unknown clock: its latency figure is still meaningful relative to "now".
    ahead = stream_time - current_time
    return mono + max(-MAX_LATENCY_S, min(MAX_LATENCY_S, ahead))


def capture_time(info: Any, frames: int, rate: int) -> float:
    """When the first sample of an input callback's block was captured."""
    wall, mono = time.time(), time.monotonic()
    adc = getattr(info, "inputBufferAdcTime", 0.0) or 0.0
    current = getattr(info, "currentTime", 0.0) or 0.0
    if adc > 0 and current > 0:
        stamped = to_monotonic(adc, current, wall, mono)
        if mono - MAX_LATENCY_S <= stamped <= mono:
            return stamped
    return mono - frames / rate  # the block just completed


def play_time(info: Any) -> float:
    """When the first sample of an output callback's block reaches the speaker."""
    wall, mono = time.time(), time.monotonic()
    dac = getattr(info, "outputBufferDacTime", 0.0) or 0.0
    current = getattr(info, "currentTime", 0.0) or 0.0
    if dac > 0 and current > 0:
        stamped = to_monotonic(dac, current, wall, mono)
        if mono - MAX_LATENCY_S <= stamped <= mono + MAX_LATENCY_S:
            return stamped
    return mono
