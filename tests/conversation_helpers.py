"""Listen to a Conversation in tests: keep every event and await conditions on them."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

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
    data: npt.NDArray[np.float32], stats: Sequence[SessionStats]
) -> list[tuple[float, float, float, float]]:
    """Check a recording against the delays measured live, report by report (see
    ``delay_lags``)."""
    return delay_lags(
        data, [(st.session_s, st.delay_ms) for st in stats if st.delay_ms is not None]
    )


def sidecar_delays(json_path: Path) -> list[tuple[float, float]]:
    """The live delays a recording's JSON sidecar lists: (seconds into the WAV, ms)."""
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    return [(float(d["t"]), float(d["delay_ms"])) for d in meta["delays"]]


def delay_lags(
    data: npt.NDArray[np.float32],
    delays: Sequence[tuple[float, float]],
    *,
    model_s: float = 0.0,
) -> list[tuple[float, float, float, float]]:
    """Check a recording against live delays given as (seconds into it, ms).

    ``model_s``: how late the model itself answers (a simulator echoing its input some frames
    later); the live delay counts from a frame sent to the model's frame for it, so what is
    heard of a sound trails it by both. Lags returned have it taken off.

    The frames heard between two reports were captured one delay earlier: for each such
    stretch of the left channel, return (its start in seconds, the lag at which it appears in
    the right channel, and the least and most delay the two reports gave), all in ms but the
    start. Silent stretches are left out.
    """
    out = []
    for (ta, da), (tb, db) in itertools.pairwise(delays):
        delay = db / 1000
        start, end = ta - delay - model_s, tb - delay - model_s
        lag = lag_ms(data[:, 0], data[:, 1], start, end)
        if lag is not None:
            lag -= 1000 * model_s
            low, high = sorted((da, db))
            out.append((start, lag, low, high))
    return out
