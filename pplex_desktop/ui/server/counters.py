"""Live figures for the server page: requests per minute, active sessions, audio today."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.gateway.events import QueueChanged, RequestServed
from pplex_desktop.gateway.server import BackendStatus
from pplex_desktop.ui.bridge import GatewayBridge, LoopBridge

WINDOW_S = 60.0
USAGE_POLL_MS = 5_000
BACKEND_POLL_MS = 2_000
Poll = Callable[[Callable[[list[BackendStatus]], None], Callable[[BaseException], None]], None]


@dataclass(frozen=True, slots=True)
class Counts:
    requests_per_min: int
    active_sessions: int | None  # None: nothing reports sessions yet
    audio_minutes_today: float


def _today_utc() -> str:
    # The key store books usage per UTC day.
    return time.strftime("%Y-%m-%d", time.gmtime())


class LiveCounters(QObject):
    """The figures, and the model servers' status, kept fresh while the app runs."""

    changed = Signal(object)  # Counts
    backends_changed = Signal(object)  # list[BackendStatus]

    def __init__(
        self,
        bridge: GatewayBridge,
        keystore: KeyStore,
        poll_backends: Poll,
        *,
        io: LoopBridge | None = None,
        now: Callable[[], float] = time.time,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._io: LoopBridge = io if io is not None else bridge  # where the usage is read
        self._keystore = keystore
        self._now = now
        self._poll_backends = poll_backends
        self._polling = False
        self.backends: list[BackendStatus] = []
        self._served: deque[float] = deque()
        self._sessions_from_backends: int | None = None
        self._sessions_reported: int | None = None
        self._audio_minutes = 0.0
        self._counts = Counts(0, None, 0.0)
        bridge.request_served.connect(self._on_request)
        bridge.backend_health.connect(lambda _event: self.refresh_backends())
        bridge.gateway_started.connect(lambda _event: self.refresh_backends())
        bridge.gateway_stopped.connect(self._on_stopped)
        bridge.queue_changed.connect(self._on_queue)
        self._tick = QTimer(self)
        self._tick.setInterval(1_000)
        self._tick.timeout.connect(self._publish)
        self._usage = QTimer(self)
        self._usage.setInterval(USAGE_POLL_MS)
        self._usage.timeout.connect(self.refresh_usage)
        self._backend_timer = QTimer(self)
        self._backend_timer.setInterval(BACKEND_POLL_MS)
        self._backend_timer.timeout.connect(self.refresh_backends)

    @property
    def counts(self) -> Counts:
        return self._counts

    def start(self) -> None:
        for timer in (self._tick, self._usage, self._backend_timer):
            timer.start()
        self.refresh_usage()

    def stop(self) -> None:
        for timer in (self._tick, self._usage, self._backend_timer):
            timer.stop()

    def set_active_sessions(self, count: int) -> None:
        """The slot for the live-session work: once it reports, its figure wins.

        Until then the count of model servers busy with a conversation stands in.
        """
        self._sessions_reported = count
        self._publish()

    def _on_stopped(self, _event: object) -> None:
        # A stopped gateway has no conversations; the last count must not stand as if live.
        self._sessions_reported = None
        self.refresh_backends()

    def _on_queue(self, event: QueueChanged) -> None:
        self.set_active_sessions(event.live)
        self.refresh_backends()

    def refresh_backends(self) -> None:
        if self._polling:  # one read in flight is enough; a slow gateway must not pile up
            return
        self._polling = True
        self._poll_backends(self._backends_polled, self._poll_failed)

    def _poll_failed(self, error: BaseException) -> None:
        self._polling = False
        self._bridge.failed.emit("reading the model servers' status", error)

    def _backends_polled(self, statuses: list[BackendStatus]) -> None:
        self._polling = False
        if statuses != self.backends:
            self.backends = statuses
            self.backends_changed.emit(statuses)
        self._sessions_from_backends = sum(1 for s in statuses if s.busy) if statuses else None
        self._publish()

    def refresh_usage(self) -> None:
        keystore = self._keystore

        def read() -> float:
            today = _today_utc()
            for day in keystore.daily_usage(days=1):
                if day.day == today:
                    # Minutes of audio the model listened to: one conversation minute is one.
                    return day.audio_in_s / 60.0
            return 0.0

        def got(minutes: float) -> None:
            self._audio_minutes = minutes
            self._publish()

        self._io.call_fn(read, on_done=got, what="reading today's usage", read_only=True)

    def _on_request(self, event: RequestServed) -> None:
        self._served.append(event.at)
        self._publish()

    def _publish(self) -> None:
        horizon = self._now() - WINDOW_S
        while self._served and self._served[0] < horizon:
            self._served.popleft()
        sessions = (
            self._sessions_reported
            if self._sessions_reported is not None
            else self._sessions_from_backends
        )
        counts = Counts(len(self._served), sessions, self._audio_minutes)
        if counts != self._counts:
            self._counts = counts
            self.changed.emit(counts)
