"""What the conversation needs from a sound device, so real and fake devices share the engine.

Everything here is seen from the asyncio loop and at the model's rate (24 kHz mono float32):
a device that runs at another rate converts on its side of this line.

Every block carries the moment its first sample was captured (microphone) or reaches the
speaker (output), on the monotonic clock. Counting samples is not a clock: a stalled audio
thread, an ALSA underrun or a dropped block loses time on one side only, and a recording built
from counts drifts by seconds. The recorder and the delay shown live both use these stamps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pplex_desktop.audio.jitter import JitterBuffer
from pplex_desktop.core.errors import PplexError

Pcm = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Captured:
    """A microphone block and the monotonic time its first sample was captured."""

    pcm: Pcm
    t: float


@dataclass(frozen=True, slots=True)
class Played:
    """A block the speaker took (after gain), the monotonic time its first sample is heard, and
    which part of the model's audio it was: ``model_samples`` samples from ``position`` (both in
    24 kHz samples of everything ``play`` was given); the rest of the block is silence."""

    pcm: Pcm
    t: float
    position: int
    model_samples: int


PlayedCallback = Callable[[Played], None]


class AudioUnavailableError(PplexError):
    """No usable sound device: PortAudio missing, no microphone, no speaker, or a device failed."""

    code = "audio_unavailable"
    status = 503


@dataclass(frozen=True, slots=True)
class DeviceStats:
    input_overflows: int  # blocks lost because the loop did not keep up, or the OS said so
    output_underflows: int  # times the OS reported the speaker ran dry
    input_rate: int
    output_rate: int


class DuplexDevice(Protocol):
    """A microphone and a speaker as the conversation loop sees them."""

    @property
    def jitter(self) -> JitterBuffer:
        """The buffer the speaker plays from; its gain and target are set by the conversation."""
        ...

    @property
    def description(self) -> str: ...

    async def start(self, on_played: PlayedCallback | None = None) -> None:
        """Open the streams; ``on_played`` then gets, on the loop, each block the speaker took."""
        ...

    async def read(self) -> Captured:
        """Wait for the next microphone block (any length); raise AudioUnavailableError if the
        microphone stopped by itself."""
        ...

    def discard_input(self) -> None:
        """Forget microphone blocks that are queued but not read yet."""
        ...

    def play(self, pcm: Pcm) -> None:
        """Queue model audio for the speaker."""
        ...

    def stats(self) -> DeviceStats: ...

    async def stop(self) -> None:
        """Close the streams; safe to call twice or before start."""
        ...
