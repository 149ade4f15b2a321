"""What the gateway tells the outside world (the desktop UI, the CLI's log) as it runs.

Events are frozen dataclasses emitted on the gateway's loop thread; a Qt bridge re-emits them
as signals, which Qt queues to the main thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayStarted:
    url: str
    host: str
    port: int
    demo_backend: str | None


@dataclass(frozen=True, slots=True)
class GatewayStopped:
    reason: str


@dataclass(frozen=True, slots=True)
class RequestServed:
    at: float
    method: str
    path: str  # redacted: no key ever appears here
    status: int
    duration_ms: float
    client: str
    key_id: int | None
    key_name: str | None
    kind: str  # "http" or "websocket"


@dataclass(frozen=True, slots=True)
class KeysChanged:
    pass


@dataclass(frozen=True, slots=True)
class VoicesChanged:
    """A custom voice was stored or removed; pickers should read the voice list again."""

    voices: tuple[str, ...]  # every voice file offered now


@dataclass(frozen=True, slots=True)
class BackendHealthChanged:
    url: str
    label: str
    healthy: bool
    detail: str


class EventHub:
    """Fan events out to listeners; a failing listener is logged and never breaks a request."""

    def __init__(self, history: int = 500) -> None:
        self._listeners: list[Listener] = []
        self.recent_requests: deque[RequestServed] = deque(maxlen=history)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, event: GatewayEvent) -> None:
        if isinstance(event, RequestServed):
            self.recent_requests.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 (a UI listener must never break serving)
                _log.exception("An event listener failed on %s.", type(event).__name__)


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: str
    route: str
    key_name: str
    client: str
    backend: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    session_id: str
    route: str
    key_name: str
    client: str
    backend: str | None
    close_code: int
    reason: str
    message: str
    duration_s: float
    audio_in_s: float
    audio_out_s: float


@dataclass(frozen=True, slots=True)
class QueueChanged:
    live: int
    queued: int


@dataclass(frozen=True, slots=True)
class JobChanged:
    job_id: str
    key_id: int
    state: str  # queued, running, done, failed or cancelled
    progress: float


@dataclass(frozen=True, slots=True)
class JobsExpired:
    job_ids: tuple[str, ...]


GatewayEvent: TypeAlias = (
    GatewayStarted
    | GatewayStopped
    | RequestServed
    | KeysChanged
    | BackendHealthChanged
    | SessionStarted
    | SessionEnded
    | QueueChanged
    | JobChanged
    | JobsExpired
    | VoicesChanged
)
Listener: TypeAlias = Callable[[GatewayEvent], None]
