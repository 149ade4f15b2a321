"""A jittery link for pplex-sim: the model's messages leave late, by a random amount, in order.

Each audio frame is held for a random delay between 0 and ``spread_s`` after it is ready, and
every ``burst_every_s`` the link holds everything for ``burst_s`` and then releases it at once
(a Wi-Fi scan, a congested uplink). Frames never overtake each other: a frame released early
waits for the one before it. The schedule is a pure function of the seed and the ready times, so
a run can be repeated exactly and tested without sockets.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JitterFault:
    spread_s: float = 0.0
    burst_every_s: float | None = None
    burst_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.spread_s < 0 or self.burst_s < 0:
            raise ValueError("The jitter spread and the burst length cannot be negative.")
        if self.burst_every_s is not None and self.burst_every_s <= self.burst_s:
            raise ValueError("Bursts must be further apart than they are long.")

    @property
    def active(self) -> bool:
        return self.spread_s > 0 or (self.burst_every_s is not None and self.burst_s > 0)


class JitterSchedule:
    """When each frame leaves, given when it was ready (seconds on any one clock)."""

    def __init__(self, fault: JitterFault, start: float) -> None:
        self.fault = fault
        self.start = start
        self._random = random.Random(fault.seed)
        self._last = -math.inf

    def release(self, ready: float) -> float:
        fault = self.fault
        leave = ready + self._random.uniform(0.0, fault.spread_s)
        if fault.burst_every_s is not None and fault.burst_s > 0:
            since = ready - self.start
            k = math.floor(since / fault.burst_every_s)
            held_from = self.start + k * fault.burst_every_s
            if k >= 1 and ready < held_from + fault.burst_s:
                leave = max(leave, held_from + fault.burst_s)
        leave = max(leave, self._last)  # in order
        self._last = leave
        return leave


class DelayedSender:
    """Sends a session's messages at their scheduled times from one task, in order.

    Audio frames draw a release time; other messages (the text that goes with a frame) leave
    with the audio before them, so the order on the wire is the order they were given in.
    """

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        fault: JitterFault,
        clock: Callable[[], float] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._clock = clock or loop.time
        self._send = send
        self._schedule = JitterSchedule(fault, self._clock())
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self._ready = asyncio.Event()
        self._last = self._clock()
        self._task = asyncio.create_task(self._run(), name="sim-jitter")

    def put(self, data: bytes, *, audio: bool) -> None:
        if audio:
            self._last = self._schedule.release(self._clock())
        self._queue.append((self._last, data))
        self._ready.set()

    async def _run(self) -> None:
        try:
            while True:
                while not self._queue:
                    self._ready.clear()
                    await self._ready.wait()
                leave, data = self._queue[0]
                wait = leave - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._queue.popleft()
                await self._send(data)
        except (ConnectionResetError, RuntimeError):
            # The client left (or the socket closed) with frames still held: nothing to send to.
            _log.debug("The jittery link had frames left when the session ended.")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
