"""Listen to a Conversation in tests: keep every event and await conditions on them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pplex_desktop.audio.conversation import (
    ConversationEvent,
    ConversationState,
    Levels,
    SessionStats,
    StateChanged,
    TextPiece,
)

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
