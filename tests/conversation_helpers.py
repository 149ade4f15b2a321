"""Listen to a Conversation in tests: keep every event and await conditions on them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pplex_desktop.audio.conversation import (
    ConversationEvent,
    ConversationState,
    Levels,
    SessionStats,
    StateChanged,
    TextPiece,
)
from tests.signals import lag_ms

WAIT_LIMIT_S = 20.0  # a conversation test waiting longer than this is broken


class EventLog:
    def __init__(self) -> None:
        self.events: list[ConversationEvent] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def __call__(self, event: ConversationEvent) -> None:
        self.events.append(event)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, WAIT_LIMIT_S)
        finally:
            self._waiters.remove(entry)

    async def wait_state(self, state: ConversationState) -> None:
        await self.wait_for(lambda: state in self.states)

    async def wait_levels(self, count: int) -> None:
        """Wait for ``count`` more level reports (one per frame sent while live)."""
        target = len(self.levels) + count
        await self.wait_for(lambda: len(self.levels) >= target)

    @property
    def states(self) -> list[ConversationState]:
        return [e.state for e in self.events if isinstance(e, StateChanged)]

    @property
    def state_events(self) -> list[StateChanged]:
        return [e for e in self.events if isinstance(e, StateChanged)]

    @property
    def texts(self) -> list[TextPiece]:
        return [e for e in self.events if isinstance(e, TextPiece)]

    @property
    def levels(self) -> list[Levels]:
        return [e for e in self.events if isinstance(e, Levels)]

    @property
    def stats(self) -> list[SessionStats]:
        return [e for e in self.events if isinstance(e, SessionStats)]

    @property
    def final(self) -> StateChanged:
        return self.state_events[-1]


def recording_lags(
    data: npt.NDArray[np.float32], stats: list[SessionStats]
) -> list[tuple[float, float, float, float]]:
    """Check a recording against the delays measured live, report by report.

    The frames heard between two reports were captured one delay earlier: for each such
    stretch of the left channel, return (its start in seconds, the lag at which it appears in
    the right channel, and the least and most delay the two reports gave), all in ms but the
    start. Silent stretches are left out.
    """
    timed = [st for st in stats if st.delay_ms is not None]
    out = []
    for a, b in itertools.pairwise(timed):
        assert a.delay_ms is not None and b.delay_ms is not None
        delay = b.delay_ms / 1000
        start, end = a.session_s - delay, b.session_s - delay
        lag = lag_ms(data[:, 0], data[:, 1], start, end)
        if lag is not None:
            low, high = sorted((a.delay_ms, b.delay_ms))
            out.append((start, lag, low, high))
    return out
