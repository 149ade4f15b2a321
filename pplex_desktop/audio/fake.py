"""A sound device that tests drive by hand: inject microphone blocks, pull speaker blocks.

No threads: the test decides when the microphone delivers and when the speaker asks, which
makes every interleaving reproducible. Blocks are stamped from the clock the test gives (the
conversation's), or with explicit times where a test wants to be exact.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from pplex_desktop.audio.duplex import (
    AudioUnavailableError,
    Captured,
    DeviceStats,
    Pcm,
    Played,
    PlayedCallback,
)
from pplex_desktop.audio.jitter import DEFAULT_TARGET_MS, JitterBuffer
from pplex_desktop.core.clock import Clock, SystemClock
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE

# A test waiting longer than this for the model is broken; fail it instead of hanging.
WAIT_LIMIT_S = 20.0


class FakeDuplexDevice:
    def __init__(
        self,
        jitter: JitterBuffer | None = None,
        clock: Clock | None = None,
        *,
        jitter_target_ms: float | None = DEFAULT_TARGET_MS,
    ) -> None:
        self.clock = clock or SystemClock()
        # On the test's clock, so that an adaptive buffer measures the arrivals the test makes.
        self._jitter = jitter or JitterBuffer(
            target_ms=jitter_target_ms, clock=self.clock.monotonic
        )
        self._queue: asyncio.Queue[Captured | None] = asyncio.Queue()
        self._on_played: PlayedCallback | None = None
        self.started = False
        self.stopped = False
        self.blocks_read = 0
        self.received: list[Pcm] = []  # everything the model sent, before the jitter buffer
        self.received_samples = 0
        self._changed = asyncio.Event()

    @property
    def jitter(self) -> JitterBuffer:
        return self._jitter

    @property
    def description(self) -> str:
        return "a simulated sound device"

    async def start(self, on_played: PlayedCallback | None = None) -> None:
        self._on_played = on_played
        self.started = True

    async def read(self) -> Captured:
        block = await self._queue.get()
        if block is None:
            raise AudioUnavailableError("The simulated microphone was unplugged.")
        self.blocks_read += 1
        return block

    def discard_input(self) -> None:
        while not self._queue.empty():
            if self._queue.get_nowait() is None:
                # Keep the unplug visible to the next read.
                self._queue.put_nowait(None)
                return

    def play(self, pcm: Pcm) -> None:
        self._jitter.push(pcm)
        self.received.append(pcm)
        self.received_samples += pcm.shape[0]
        self._changed.set()

    def stats(self) -> DeviceStats:
        return DeviceStats(0, 0, SAMPLE_RATE, SAMPLE_RATE)

    async def stop(self) -> None:
        self.stopped = True

    # The test's side.

    def inject(self, pcm: npt.ArrayLike, t: float | None = None) -> None:
        """The microphone delivers one block, whose first sample was captured at ``t`` (by
        default one block's length ago: the block has just completed)."""
        block = np.array(pcm, dtype=np.float32).reshape(-1)
        if t is None:
            t = self.clock.monotonic() - block.shape[0] / SAMPLE_RATE
        self._queue.put_nowait(Captured(block, t))

    def unplug(self) -> None:
        """The microphone stops delivering, as a real one does when it is unplugged."""
        self._queue.put_nowait(None)

    async def wait_received(self, samples: int) -> None:
        """Wait until the model has sent at least ``samples`` samples in total."""
        async with asyncio.timeout(WAIT_LIMIT_S):
            while self.received_samples < samples:
                self._changed.clear()
                await self._changed.wait()

    def received_pcm(self) -> Pcm:
        return np.concatenate(self.received) if self.received else np.zeros(0, np.float32)

    def pull(self, n: int = FRAME_SAMPLES, t: float | None = None) -> Pcm:
        """The speaker takes ``n`` samples, exactly as the real output callback would; they are
        heard from ``t`` on (by default now)."""
        out = np.empty(n, dtype=np.float32)
        position, taken = self._jitter.pull_into(out)
        if self._on_played is not None:
            when = self.clock.monotonic() if t is None else t
            self._on_played(Played(out.copy(), when, position, taken))
        return out
