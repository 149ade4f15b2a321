"""A thread that owns one asyncio event loop.

The gateway and the live conversation each run on one of these, so a busy Qt main thread
(a modal dialog, a heavy repaint) never starves the network or the audio.

The loop is made explicitly, never through the process-wide event-loop policy: ``qasync.run()``
replaces that policy, and a thread asking it for a loop gets a Qt loop that cannot run off the
main thread (the Talk page froze for good at real launch when it did).

``PPLEX_ASYNCIO_DEBUG=1`` turns on asyncio's debug mode in every loop thread that was not given
``debug=`` explicitly, and ``PPLEX_SLOW_CALLBACK_MS`` sets how long a callback may hold the loop
before asyncio logs it as slow (100 ms by default). They are environment variables so that the
test suite's settings reach the app, gateway and simulator processes it starts as well.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pplex_desktop.core.errors import PplexError

_log = logging.getLogger(__name__)
T = TypeVar("T")
START_TIMEOUT_S = 10.0
LEFTOVER_TIMEOUT_S = 2.0  # for the tasks still running when a loop stops
DEBUG_ENV = "PPLEX_ASYNCIO_DEBUG"
SLOW_CALLBACK_ENV = "PPLEX_SLOW_CALLBACK_MS"


class LoopThreadError(PplexError, RuntimeError):
    """A loop thread whose loop did not come up; the message is a sentence for the user."""

    code = "loop_thread_failed"


def new_plain_loop() -> asyncio.AbstractEventLoop:
    """A standard asyncio loop, whatever policy another library installed for the process."""
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop()
    return asyncio.SelectorEventLoop()


def debug_from_environment() -> bool | None:
    """True when ``PPLEX_ASYNCIO_DEBUG`` asks for debug mode; None leaves asyncio's default."""
    return True if os.environ.get(DEBUG_ENV, "").strip() == "1" else None


def slow_callback_s_from_environment() -> float | None:
    """``PPLEX_SLOW_CALLBACK_MS`` in seconds, or None when it is unset or not a positive number."""
    raw = os.environ.get(SLOW_CALLBACK_ENV, "").strip()
    if not raw:
        return None
    try:
        ms = float(raw)
    except ValueError:
        ms = -1.0
    if not ms > 0:
        _log.warning(
            "Ignoring %s=%r: it must be a positive number of milliseconds.", SLOW_CALLBACK_ENV, raw
        )
        return None
    return ms / 1000.0


def apply_debug_settings(loop: asyncio.AbstractEventLoop, debug: bool | None = None) -> None:
    """Give ``loop`` the debug mode and slow-callback threshold asked for, by argument or by
    the environment (see the module's docstring)."""
    debug = debug_from_environment() if debug is None else debug
    if debug is not None:
        loop.set_debug(debug)
    slow = slow_callback_s_from_environment()
    if slow is not None:
        loop.slow_callback_duration = slow


class LoopThread:
    def __init__(
        self,
        name: str,
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_plain_loop,
        debug: bool | None = None,
    ) -> None:
        self.name = name
        self._loop_factory = loop_factory
        self._debug = debug
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"The {self.name} loop thread is not running.")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the thread and wait until its loop runs; raise a sentence if it does not."""
        if self.running and self._loop is not None:
            return
        self._ready.clear()
        self._failure = None
        thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread = thread
        thread.start()
        if self._ready.wait(timeout) and self._loop is not None:
            return
        failure = self._failure
        if not thread.is_alive():
            self._thread = None
        detail = f" ({type(failure).__name__}: {failure})" if failure is not None else ""
        raise LoopThreadError(
            f"The {self.name} thread could not start its event loop within {timeout:g} s"
            f"{detail}. Please restart the app; if it happens again, report it with the log."
        )

    def _run(self) -> None:
        try:
            loop = self._loop_factory()
            apply_debug_settings(loop, self._debug)
            asyncio.set_event_loop(loop)
        except Exception as exc:  # noqa: BLE001 (handed to start(), which raises a sentence)
            self._failure = exc
            _log.exception("The %s thread could not create its event loop.", self.name)
            self._ready.set()
            return

        def ready() -> None:
            # Published only once the loop really runs, so start() never returns on a dead one.
            self._loop = loop
            self._ready.set()

        loop.call_soon(ready)
        try:
            loop.run_forever()
        except Exception as exc:  # noqa: BLE001 (handed to start(), which raises a sentence)
            self._failure = exc
            _log.exception("The %s loop stopped with an error.", self.name)
            self._ready.set()
            self._loop = None
            loop.close()
            return
        self._loop = None
        try:
            self._cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def _cancel_leftovers(self, loop: asyncio.AbstractEventLoop) -> None:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        # Bounded: a task that ignores its cancellation must not keep the thread (and the app's
        # quit, which joins it) waiting for ever.
        _done, stuck = loop.run_until_complete(asyncio.wait(tasks, timeout=LEFTOVER_TIMEOUT_S))
        for task in stuck:
            _log.error(
                "A task on the %s loop did not stop within %g s of its cancellation: %s.",
                self.name,
                LEFTOVER_TIMEOUT_S,
                _where(task),
            )
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                _log.error(
                    "A task left running on the %s loop failed while stopping: %r.",
                    self.name,
                    task.exception(),
                )

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on this loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on this loop and wait for it; never call from the Qt main thread."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run() called from its own loop would deadlock.")
        return self.submit(coro).result(timeout)

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"The {self.name} loop thread did not stop within {timeout} s.")
        self._thread = None


def _where(task: asyncio.Task[Any]) -> str:
    """A task's name and the chain of coroutines it waits in (outermost first), for a log line."""
    lines: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(lines) < 12:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            lines.append(type(awaited).__name__)
            break
        name = frame.f_code.co_filename.rsplit("/", 1)[-1]
        lines.append(f"{frame.f_code.co_name} ({name}:{frame.f_lineno})")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return f"{task.get_name()} waiting in {' -> '.join(lines) or 'nothing'}"
