"""The slow-callback check of the harness (tests/loop_debug.py) and its loop-thread half."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from pplex_desktop.core.loop_thread import (
    LoopThread,
    apply_debug_settings,
    new_plain_loop,
    slow_callback_s_from_environment,
)
from tests import loop_debug


async def test_pytest_asyncio_loops_run_in_debug_mode_with_the_threshold() -> None:
    loop = asyncio.get_running_loop()
    assert loop.get_debug()
    assert loop.slow_callback_duration == pytest.approx(loop_debug.slow_callback_ms() / 1000)


def test_loop_threads_take_debug_mode_and_threshold_from_the_environment() -> None:
    thread = LoopThread("test-debug")
    thread.start()
    try:

        async def settings() -> tuple[bool, float]:
            loop = asyncio.get_running_loop()
            return loop.get_debug(), loop.slow_callback_duration

        debug, threshold = thread.run(settings(), timeout=5)
    finally:
        thread.stop()
    assert debug
    assert threshold == pytest.approx(loop_debug.slow_callback_ms() / 1000)


def test_an_explicit_debug_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPLEX_ASYNCIO_DEBUG", "1")
    loop = new_plain_loop()
    try:
        apply_debug_settings(loop, debug=False)
        assert not loop.get_debug()
    finally:
        loop.close()


@pytest.mark.parametrize("raw", ["fast", "-5", "0"])
def test_a_threshold_that_is_not_a_positive_number_is_ignored(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("PPLEX_SLOW_CALLBACK_MS", raw)
    assert slow_callback_s_from_environment() is None


def _run_slowly(callback: Callable[[], None]) -> list[loop_debug.SlowCallback]:
    """Run ``callback`` on a debug loop that logs anything over 10 ms; return what was kept."""
    collector = loop_debug.SlowCallbackCollector()
    collector.install()
    loop = new_plain_loop()
    try:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.01
        loop.call_soon(callback)
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        logging.getLogger("asyncio").removeHandler(collector)
    return collector.records


@pytest.mark.slow_callbacks_allowed(reason="it blocks a loop on purpose, to see it collected")
def test_a_waiting_callback_is_collected_with_little_cpu_time() -> None:
    def wait() -> None:
        time.sleep(0.05)  # the blocking call under test

    [slow] = _run_slowly(wait)
    assert slow.message.startswith("Executing <Handle ") and "wait()" in slow.message
    assert slow.wall_s >= 0.05
    assert slow.cpu_s is not None and slow.cpu_s < 0.04, "asleep, not on the CPU"


@pytest.mark.slow_callbacks_allowed(reason="it blocks a loop on purpose, to see it collected")
def test_a_computing_callback_is_collected_with_its_cpu_time() -> None:
    def compute() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.03:  # bounded: 30 ms of this thread's CPU
            pass

    [slow] = _run_slowly(compute)
    assert slow.cpu_s is not None and slow.cpu_s >= 0.03


@pytest.mark.parametrize(
    ("wall_s", "cpu_s", "blocking"),
    [
        (0.15, 0.12, True),  # work on the loop
        (0.6, 0.02, False),  # preempted on a busy machine
        (1.2, 0.0, True),  # a blocking wait
        (0.15, None, False),  # no CPU figure (a loop of another kind): wall time alone
    ],
)
def test_what_counts_as_blocking(wall_s: float, cpu_s: float | None, blocking: bool) -> None:
    assert loop_debug.SlowCallback("Executing x", wall_s, cpu_s).blocking is blocking


@pytest.mark.parametrize(
    ("wall_s", "queued_s", "blocking"),
    [
        (2.5, 2.45, False),  # runnable all along, the cores busy with other work
        (2.5, 1.0, True),  # 1.45 s neither running nor runnable: blocked
    ],
)
def test_time_waiting_for_a_core_is_not_a_stall(
    wall_s: float, queued_s: float, blocking: bool
) -> None:
    slow = loop_debug.SlowCallback("Executing x", wall_s, 0.05, queued_s, 0.05)
    assert slow.blocking is blocking


@pytest.mark.skipif(loop_debug._queued_s() is None, reason="no per-thread schedstat here")
@pytest.mark.slow_callbacks_allowed(reason="it blocks a loop on purpose, to see it collected")
def test_a_sleeping_callback_is_not_counted_as_waiting_for_a_core() -> None:
    def wait() -> None:
        time.sleep(0.05)  # the blocking call under test: asleep, so not queued for a core

    [slow] = _run_slowly(wait)
    assert slow.queued_s is not None and slow.queued_s < 0.04
    assert slow.stalled_s >= 0.01
