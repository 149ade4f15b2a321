"""The one crossing between the Qt main thread and an asyncio loop thread.

Two loops serve the desktop: the gateway's (``GatewayBridge``: its events, and the calls of
``GatewayServer`` that must touch gateway state) and the desktop's own I/O loop (``IoBridge``:
the pages' HTTP clients, and their disk work in a thread beside it), so nothing the pages do
ever delays the live audio the gateway relays.

UI → loop: ``call`` schedules a coroutine on the loop with ``run_coroutine_threadsafe`` and never
waits; the outcome comes back on the Qt thread through a queued signal. Loop → UI: gateway
events are re-emitted as Qt signals. Everything emitted from the loop thread goes through one
private signal connected to a slot of this object, so Qt always queues it to the main thread
whatever the final receivers are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QObject, Qt, Signal

from pplex_desktop.core.loop_thread import LoopThread, LoopThreadError
from pplex_desktop.gateway.events import (
    BackendHealthChanged,
    EventHub,
    GatewayEvent,
    GatewayStarted,
    GatewayStopped,
    JobChanged,
    JobsExpired,
    KeysChanged,
    QueueChanged,
    RequestServed,
)

_log = logging.getLogger(__name__)
T = TypeVar("T")
OnDone = Callable[[Any], None]
OnError = Callable[[BaseException], None]


class BridgeClosedError(RuntimeError):
    """The bridge was closed (the app is quitting): no more work goes to its loop."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    token: int
    value: object
    error: BaseException | None
    cancelled: bool


@dataclass(slots=True)
class _Waiting:
    on_done: OnDone | None
    on_error: OnError | None
    what: str


class LoopBridge(QObject):
    """Runs work on one loop thread and reports back on the Qt thread."""

    # (what, exception) for failures nobody asked to handle; the error reporter shows them.
    failed = Signal(str, object)
    _finished = Signal(object)

    def __init__(self, thread: LoopThread, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = thread
        self._waiting: dict[int, _Waiting] = {}
        self._tokens = itertools.count()
        self._closed = False
        # Queued even when a future is already done on the Qt thread: a completion is always
        # delivered later, never inside call(), so callers see one order of events.
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def thread_name(self) -> str:
        return self._thread.name

    @property
    def pending(self) -> int:
        """Calls whose completion has not reached the Qt thread yet."""
        return len(self._waiting)

    def call(
        self,
        coro: Coroutine[Any, Any, T],
        on_done: Callable[[T], None] | None = None,
        on_error: OnError | None = None,
        *,
        what: str = "",
    ) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; ``on_done``/``on_error`` later run on the Qt thread.

        Without ``on_error`` a failure is emitted on ``failed`` so it is never silent.
        """
        if self._closed:
            coro.close()
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            future.set_exception(BridgeClosedError("The application is quitting."))
            return future
        try:
            self._thread.start()
        except LoopThreadError as exc:
            # Reported like any failed call, so the page shows the sentence instead of hanging.
            coro.close()
            future = concurrent.futures.Future()
            future.set_exception(exc)
        else:
            future = self._thread.submit(coro)
        return self.watch(future, on_done, on_error, what=what or _describe(coro))

    def call_fn(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_done: Callable[[T], None] | None = None,
        on_error: OnError | None = None,
        what: str = "",
        read_only: bool = False,
    ) -> concurrent.futures.Future[T]:
        """Run a plain function on the loop thread (SQLite, the gateway's state); ``read_only``
        work is skipped if the app has begun quitting when its turn comes."""

        work = self._unless_closed(fn) if read_only else fn

        async def invoke() -> T:
            return work(*args)

        return self.call(
            invoke(), on_done, on_error, what=what or getattr(fn, "__qualname__", repr(fn))
        )

    def watch(
        self,
        future: concurrent.futures.Future[T],
        on_done: Callable[[T], None] | None = None,
        on_error: OnError | None = None,
        *,
        what: str = "",
    ) -> concurrent.futures.Future[T]:
        """Deliver the outcome of a future made elsewhere (e.g. GatewayServer.start_future)."""
        token = next(self._tokens)
        self._waiting[token] = _Waiting(on_done, on_error, what)
        future.add_done_callback(lambda f: self._report(token, f))
        return future

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await loop work from a coroutine on the qasync (Qt) loop."""
        self._thread.start()
        return await asyncio.wrap_future(self._thread.submit(coro))

    def _unless_closed(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn``, refused when its turn comes after the app began quitting."""

        def job(*args: Any) -> T:
            if self._closed:
                raise BridgeClosedError("The application is quitting.")
            return fn(*args)

        return job

    def _report(self, token: int, future: concurrent.futures.Future[Any]) -> None:
        # Runs in whichever thread completed the future.
        if future.cancelled():
            outcome = _Outcome(token, None, None, True)
        else:
            error = future.exception()
            outcome = _Outcome(token, None if error else future.result(), error, False)
        self._emit_safely(self._finished, outcome)

    @staticmethod
    def _emit_safely(signal: Any, payload: object) -> None:
        try:
            signal.emit(payload)
        except RuntimeError:
            # The Qt object is gone: the app quit while the loop finished late work.
            _log.debug("A result arrived after the bridge was deleted; it is dropped.")

    def _deliver(self, outcome: _Outcome) -> None:
        waiting = self._waiting.pop(outcome.token, None)
        if waiting is None or outcome.cancelled:
            return
        if _owner_gone(waiting.on_done) or _owner_gone(waiting.on_error):
            # Its widget was deleted while the work ran (a dialog saved and closed meanwhile).
            _log.debug("A result for %s arrived after its widget was deleted.", waiting.what)
            return
        if outcome.error is not None:
            if waiting.on_error is not None:
                waiting.on_error(outcome.error)
            elif not self._closed:
                self.failed.emit(waiting.what, outcome.error)
            return
        if waiting.on_done is not None:
            waiting.on_done(outcome.value)

    def close(self) -> None:
        """Refuse new work and drop callbacks still waiting (the app is quitting)."""
        self._closed = True
        self._waiting.clear()


class IoBridge(LoopBridge):
    """The desktop's I/O loop, with one disk thread beside it.

    ``call_fn`` runs its function (SQLite, settings saves with fsync, file checks) in the disk
    thread, never on a loop; one thread, so writes land in the order they were asked for.
    Coroutines on the loop reach the same thread with ``on_disk``.
    """

    def __init__(self, thread: LoopThread, parent: QObject | None = None) -> None:
        super().__init__(thread, parent)
        self._disk = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{thread.name}-disk"
        )

    def call_fn(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_done: Callable[[T], None] | None = None,
        on_error: OnError | None = None,
        what: str = "",
        read_only: bool = False,
    ) -> concurrent.futures.Future[T]:
        """Run a plain function in the disk thread; the outcome comes back on the Qt thread.

        ``read_only`` work (a refresh of what a page shows) is skipped if the app has begun
        quitting by the time its turn comes: the exit waits for the saves queued before it, not
        for reads nobody will see, which a slow or locked disk makes seconds each.
        """
        what = what or getattr(fn, "__qualname__", repr(fn))
        if self._closed:
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            future.set_exception(BridgeClosedError("The application is quitting."))
            return future
        job = self._unless_closed(fn) if read_only else fn
        return self.watch(self._disk.submit(job, *args), on_done, on_error, what=what)

    async def on_disk(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn`` in the disk thread from a coroutine on any loop."""
        return await asyncio.wrap_future(self._disk.submit(fn, *args))

    def finish(self) -> None:
        """Wait for the disk work already asked for (the last saves), at exit."""
        self._disk.shutdown(wait=True)


class GatewayBridge(LoopBridge):
    """The bridge of the gateway's loop: also re-emits the gateway's events as Qt signals."""

    # Not "event": that name is QObject.event(), which Qt calls for every QEvent.
    any_event = Signal(object)  # every GatewayEvent, for generic listeners
    gateway_started = Signal(object)  # GatewayStarted
    gateway_stopped = Signal(object)  # GatewayStopped
    request_served = Signal(object)  # RequestServed
    keys_changed = Signal()
    backend_health = Signal(object)  # BackendHealthChanged
    queue_changed = Signal(object)  # QueueChanged: live sessions and callers waiting
    job_changed = Signal(object)  # JobChanged: an offline job's state or progress
    jobs_expired = Signal(object)  # JobsExpired: finished jobs the gateway deleted
    _arrived = Signal(object)

    def __init__(self, thread: LoopThread, hub: EventHub, parent: QObject | None = None) -> None:
        super().__init__(thread, parent)
        self._hub = hub
        self._arrived.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        hub.subscribe(self._on_event)

    def _on_event(self, event: GatewayEvent) -> None:
        # On the gateway thread: only hand the event over, never touch widgets here.
        self._emit_safely(self._arrived, event)

    def _dispatch(self, event: GatewayEvent) -> None:
        if self._closed:
            return
        self.any_event.emit(event)
        if isinstance(event, RequestServed):
            self.request_served.emit(event)
        elif isinstance(event, KeysChanged):
            self.keys_changed.emit()
        elif isinstance(event, BackendHealthChanged):
            self.backend_health.emit(event)
        elif isinstance(event, GatewayStarted):
            self.gateway_started.emit(event)
        elif isinstance(event, GatewayStopped):
            self.gateway_stopped.emit(event)
        elif isinstance(event, QueueChanged):
            self.queue_changed.emit(event)
        elif isinstance(event, JobChanged):
            self.job_changed.emit(event)
        elif isinstance(event, JobsExpired):
            self.jobs_expired.emit(event)

    def close(self) -> None:
        self._hub.unsubscribe(self._on_event)
        super().close()


def _describe(coro: Coroutine[Any, Any, Any]) -> str:
    return getattr(coro, "__qualname__", type(coro).__name__)


def _owner_gone(callback: Callable[..., object] | None) -> bool:
    """Whether ``callback`` is a method of a Qt object whose C++ side no longer exists."""
    owner = getattr(callback, "__self__", None)
    return isinstance(owner, QObject) and not shiboken6.isValid(owner)
