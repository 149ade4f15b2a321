"""Live sessions the gateway is carrying: what the admin view lists and what can be ended."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.errors import RateLimitedError
from pplex_desktop.core.keystore import ApiKey


@dataclass
class LiveSession:
    id: str
    route: str
    key_id: int
    key_name: str
    client: str
    queued_at: float
    state: str = "queued"
    position: int = 0
    backend: str | None = None
    started_at: float | None = None
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    messages_up: int = 0
    messages_down: int = 0
    end: Callable[[CloseCode, str], None] | None = field(default=None, repr=False)
    # False once the client has closed: tearing down the backend side takes a few ms more,
    # and a client reconnecting at once must not find its own old session in the way.
    holds_slot: bool = True

    def to_public(self) -> dict[str, Any]:
        now = time.time()
        return {
            "id": self.id,
            "route": self.route,
            "state": self.state,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "client": self.client,
            "backend": self.backend,
            "queue_position": self.position if self.state == "queued" else None,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "duration_s": round(now - self.started_at, 1) if self.started_at else 0.0,
            "audio_in_s": round(self.audio_in_s, 2),
            "audio_out_s": round(self.audio_out_s, 2),
            "messages_relayed": self.messages_up + self.messages_down,
        }


class SessionRegistry:
    def __init__(self) -> None:
        self.sessions: dict[str, LiveSession] = {}
        self._listeners: list[Callable[[], None]] = []
        self._empty = asyncio.Event()
        self._empty.set()

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def changed(self) -> None:
        if self.sessions:
            self._empty.clear()
        else:
            self._empty.set()
        for listener in list(self._listeners):
            listener()

    def reserve(self, key: ApiKey, client: str, route: str) -> LiveSession:
        """Register a session for ``key`` if its concurrent-session limit allows one more."""
        self.check_room(key)
        session = LiveSession(secrets.token_hex(6), route, key.id, key.name, client, time.time())
        self.sessions[session.id] = session
        self.changed()
        return session

    def check_room(self, key: ApiKey) -> None:
        """Refuse, with the sentence a client sees, a session beyond the key's limit."""
        active = sum(1 for s in self.sessions.values() if s.key_id == key.id and s.holds_slot)
        if active >= key.max_sessions:
            raise RateLimitedError(
                f"The key '{key.name}' already has {active} live session"
                f"{'s' if active != 1 else ''} (its limit is {key.max_sessions}); end one "
                "first or raise the key's limit.",
                retry_after_s=5.0,
                code="too_many_sessions",
            )

    def remove(self, session: LiveSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self.changed()

    def end(self, session_id: str, code: CloseCode, reason: str) -> bool:
        session = self.sessions.get(session_id)
        if session is None or session.end is None:
            return False
        session.end(code, reason)
        return True

    def end_where(
        self, predicate: Callable[[LiveSession], bool], code: CloseCode, reason: str
    ) -> int:
        ended = 0
        for session in list(self.sessions.values()):
            if predicate(session) and session.end is not None:
                session.end(code, reason)
                ended += 1
        return ended

    def key_ids(self) -> set[int]:
        return {s.key_id for s in self.sessions.values()}

    @property
    def live_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.state == "live")

    @property
    def queued_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.state == "queued")
