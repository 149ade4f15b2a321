"""Blocking work on an event loop fails the test that caused it.

Every loop of the test run is in asyncio's debug mode, where a callback (a task step, a
``call_soon`` handle) that holds the loop longer than ``slow_callback_duration`` is logged by
the ``asyncio`` logger as "Executing <Handle ...> took 0.123 seconds". The collector here picks
those records up, and ``tests/conftest.py`` fails the test they came from.

asyncio measures wall time, and on a machine shared with other work a callback that was merely
preempted looks as slow as one that blocked. So each callback's CPU time is measured too (the
thread's own clock, which stands still while the thread waits for a core), and a slow callback
fails the test when either:

- its CPU time, less the garbage collector's, reached ``PPLEX_SLOW_CALLBACK_MS`` (100 ms):
  work that belongs in a thread (encoding, key generation, a large JSON document), however
  loaded the machine is; or
- the time it spent neither on a CPU nor waiting for one reached ``PPLEX_STALLED_CALLBACK_MS``
  (1 s): a blocking wait (a SQLite busy timeout, a blocking socket, a sleep). On Linux the
  kernel counts, per thread, the time spent runnable but waiting for a core
  (``/proc/<pid>/task/<tid>/schedstat``); that time is taken off the wall time, so a callback
  preempted for seconds on an overloaded machine is not a stall. Elsewhere wall time is used.

Steps of the test function's own coroutine (and of async fixtures) are left out: what they do
is the test's set-up and analysis, not the code under test.

A test whose loop really blocks, and whose fix belongs elsewhere, is marked
``@pytest.mark.slow_callbacks_allowed(reason=...)``; the thresholds are not raised for it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from dataclasses import dataclass

from pplex_desktop.core.loop_thread import DEBUG_ENV, SLOW_CALLBACK_ENV

DEFAULT_SLOW_CALLBACK_MS = 100.0
DEFAULT_STALLED_CALLBACK_MS = 1_000.0
STALLED_CALLBACK_ENV = "PPLEX_STALLED_CALLBACK_MS"
# Steps of the test function's own coroutine, or of an async fixture's: the test's set-up and
# analysis (building damaged files, numpy checks), which the check is not about.
TEST_CODE_MARKERS = ("coro=<test_", "coro=<_wrap_async_fixture")
# The format string asyncio's loop logs a slow callback with (base_events._run_once).
SLOW_CALLBACK_MESSAGE = "Executing %s took %.3f seconds"


def _ms_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    return value if value > 0 else default


def slow_callback_ms() -> float:
    return _ms_from_env(SLOW_CALLBACK_ENV, DEFAULT_SLOW_CALLBACK_MS)


def stalled_callback_ms() -> float:
    return _ms_from_env(STALLED_CALLBACK_ENV, DEFAULT_STALLED_CALLBACK_MS)


def export_settings() -> None:
    """Put the settings where loop threads, here and in subprocesses, read them."""
    os.environ.setdefault(DEBUG_ENV, "1")
    os.environ[SLOW_CALLBACK_ENV] = f"{slow_callback_ms():g}"


def watch(loop: asyncio.AbstractEventLoop) -> None:
    """Debug mode and the threshold, for a loop the test run made itself (pytest-asyncio's)."""
    loop.set_debug(True)
    loop.slow_callback_duration = slow_callback_ms() / 1000.0


_last_run = threading.local()
_gc = threading.local()
_sched = threading.local()


class _SchedStat:
    """This thread's schedstat file, opened once; closed when the thread's locals go, at its
    end (a test run starts thousands of loop threads, and an fd each would add up)."""

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open(
                f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY
            )
        except OSError:
            self.fd = None

    def __del__(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _schedstat_fd() -> int | None:
    stat: _SchedStat | None = getattr(_sched, "stat", None)
    if stat is None:
        stat = _sched.stat = _SchedStat()
    return stat.fd


def _queued_s() -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU, since it started."""
    fd = _schedstat_fd()
    if fd is None:
        return None
    try:
        fields = os.pread(fd, 128, 0).split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _gc_clock(phase: str, info: dict[str, int]) -> None:
    """Count the collector's CPU time per thread: a full collection of a test run's heap takes
    a few hundred ms and lands in whatever callback happened to allocate, which is no fault of
    that callback."""
    del info
    now = time.thread_time()
    if phase == "start":
        _gc.started = now
    else:
        _gc.total = getattr(_gc, "total", 0.0) + now - getattr(_gc, "started", now)


def meter_callback_cpu() -> None:
    """Wrap asyncio's ``Handle._run`` (pure Python, task steps included) to note each
    callback's CPU time, the collector's excepted, for the warning asyncio logs right after
    it, on the same thread."""
    original = asyncio.Handle._run
    if getattr(original, "_pplex_metered", False):
        return
    if _gc_clock not in gc.callbacks:
        gc.callbacks.append(_gc_clock)

    def _run(self: asyncio.Handle) -> None:
        start = time.thread_time()
        queued = _queued_s()
        collected = getattr(_gc, "total", 0.0)
        try:
            original(self)
        finally:
            spent = time.thread_time() - start
            _last_run.cpu_s = spent - (getattr(_gc, "total", 0.0) - collected)
            _last_run.on_cpu_s = spent
            after = _queued_s()
            _last_run.queued_s = None if queued is None or after is None else after - queued

    _run._pplex_metered = True  # type: ignore[attr-defined]
    asyncio.Handle._run = _run  # type: ignore[method-assign]


@dataclass(frozen=True)
class SlowCallback:
    message: str
    wall_s: float
    cpu_s: float | None
    queued_s: float | None = None  # runnable but waiting for a core (None: not known here)
    on_cpu_s: float | None = None  # all CPU time, the collector's included

    @property
    def stalled_s(self) -> float:
        """Wall time neither on a CPU nor waiting for one: time spent blocked."""
        if self.queued_s is None:
            return self.wall_s
        on_cpu = self.on_cpu_s if self.on_cpu_s is not None else (self.cpu_s or 0.0)
        return max(0.0, self.wall_s - self.queued_s - on_cpu)

    @property
    def blocking(self) -> bool:
        if self.cpu_s is not None and self.cpu_s * 1000 >= slow_callback_ms():
            return True
        return self.stalled_s * 1000 >= stalled_callback_ms()

    def describe(self) -> str:
        parts = []
        if self.cpu_s is not None:
            parts.append(f"{1000 * self.cpu_s:.0f} ms of it on the CPU")
        if self.queued_s is not None:
            parts.append(f"{1000 * self.queued_s:.0f} ms waiting for a CPU")
        return self.message + (f" ({', '.join(parts)})" if parts else "")


class SlowCallbackCollector(logging.Handler):
    """Keeps asyncio's slow-callback warnings, from any thread's loop, with their CPU time."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[SlowCallback] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != "asyncio" or record.msg != SLOW_CALLBACK_MESSAGE:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        wall = args[1] if len(args) == 2 and isinstance(args[1], float) else 0.0
        cpu = getattr(_last_run, "cpu_s", None)
        queued = getattr(_last_run, "queued_s", None)
        on_cpu = getattr(_last_run, "on_cpu_s", None)
        message = record.getMessage()
        if any(marker in message for marker in TEST_CODE_MARKERS):
            return  # a step of the test's own coroutine: its set-up and checks, not the product
        self.records.append(SlowCallback(message, wall, cpu, queued, on_cpu))

    def install(self) -> None:
        meter_callback_cpu()
        logger = logging.getLogger("asyncio")
        logger.addHandler(self)
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
