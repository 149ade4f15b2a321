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
from pplex_desktop.moshi.codec import SAMPLE_RATE
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


def assert_lags_follow_the_live_delay(
    data: npt.NDArray[np.float32],
    lags: Sequence[tuple[float, float, float, float]],
    tolerance_ms: float = 20.0,
) -> None:
    """A recording's two channels agree with the live delay from its first sound to its last."""
    print("\n(start s, lag ms, live delay ms from, to):")
    for row in lags:
        print(f"  {row[0]:5.2f} {row[1]:6.0f} {row[2]:6.0f} {row[3]:6.0f}")
    off = [row for row in lags if not row[2] - tolerance_ms <= row[1] <= row[3] + tolerance_ms]
    assert not off, f"the channels disagree with the live delay: {off}"
    sound = np.flatnonzero(np.abs(data[:, 0]) > 0.05) / SAMPLE_RATE
    assert sound.size, "the chirps never reached the model"
    assert len(lags) >= 6, f"too few stretches of the echo were heard to judge: {lags}"
    heard = f"sound from {sound[0]:.2f} s to {sound[-1]:.2f} s, stretches judged {lags}"
    assert lags[0][0] < sound[0] + 1.0, f"checked from the first second of sound: {heard}"
    assert lags[-1][0] > sound[-1] - 1.5, f"checked to the last second of sound: {heard}"
