from __future__ import annotations

import asyncio
import contextlib
import gc
import threading

import pytest

from pplex_desktop.core.loop_thread import LEFTOVER_TIMEOUT_S, LoopThread, LoopThreadError


def test_runs_coroutines_on_its_own_thread() -> None:
    lt = LoopThread("test-loop")
    lt.start()
    try:

        async def where() -> str:
            return threading.current_thread().name

        assert lt.run(where(), timeout=5) == "test-loop"
    finally:
        lt.stop()
    assert not lt.running


def test_stop_cancels_leftover_tasks() -> None:
    lt = LoopThread("leftovers")
    lt.start()
    cancelled = threading.Event()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lt.submit(forever())
    assert started.wait(5)
    lt.stop()
    assert cancelled.is_set()


def test_run_from_its_own_loop_is_refused() -> None:
    lt = LoopThread("self")
    lt.start()
    try:

        async def nested() -> None:
            async def inner() -> None:
                return None

            lt.run(inner())

        with pytest.raises(RuntimeError, match="deadlock"):
            lt.run(nested(), timeout=5)
    finally:
        lt.stop()


class _ForeignPolicy(asyncio.DefaultEventLoopPolicy):
    """Stands in for qasync's policy: its loops cannot run on a worker thread."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        raise AssertionError("a foreign policy's loop was asked for")


def test_ignores_a_process_wide_policy_installed_by_another_library() -> None:
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_ForeignPolicy())
    lt = LoopThread("policy-proof")
    try:
        lt.start(timeout=5)

        async def kind() -> str:
            return type(asyncio.get_running_loop()).__name__

        assert lt.run(kind(), timeout=5) in {"_UnixSelectorEventLoop", "ProactorEventLoop"}
    finally:
        lt.stop()
        asyncio.set_event_loop_policy(previous)


@pytest.mark.expect_error_logs
def test_a_loop_that_cannot_be_made_fails_start_with_a_sentence_naming_the_thread() -> None:
    def broken() -> asyncio.AbstractEventLoop:
        raise AssertionError("no loop for you")

    lt = LoopThread("pplex-conversation", loop_factory=broken)
    with pytest.raises(LoopThreadError, match=r"The pplex-conversation thread could not start"):
        lt.start(timeout=5)
    assert not lt.running


@pytest.mark.expect_error_logs
def test_a_loop_that_dies_before_running_fails_start_instead_of_hanging() -> None:
    class Dying(asyncio.SelectorEventLoop):
        def run_forever(self) -> None:
            raise AssertionError("QApplication::exec: Must be called from the main thread")

    lt = LoopThread("dying", loop_factory=Dying)
    with pytest.raises(LoopThreadError, match="AssertionError"):
        lt.start(timeout=5)
    lt.stop(timeout=5)
    assert not lt.running


@pytest.mark.expect_error_logs
def test_a_task_that_ignores_its_cancellation_cannot_hold_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app's quit joins its loop threads: a stuck task costs at most a bounded wait, and
    is named in the log."""
    lt = LoopThread("stubborn")
    lt.start()
    started = threading.Event()

    async def stubborn() -> None:
        started.set()
        for _ in range(1000):  # bounded; each cancellation is swallowed on purpose
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    lt.submit(stubborn())
    assert started.wait(5)
    lt.stop(timeout=LEFTOVER_TIMEOUT_S + 5)
    assert not lt.running
    gc.collect()  # asyncio's "destroyed but pending" for it is logged here, inside this test
    stuck = [r.getMessage() for r in caplog.records if "did not stop" in r.getMessage()]
    assert len(stuck) == 1 and "stubborn (test_loop_thread.py:" in stuck[0], stuck
