from __future__ import annotations

import asyncio
import threading

import pytest

from pplex_desktop.core.loop_thread import LoopThread


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
