"""Stopping tasks: the caller's own cancellation is never swallowed, a task's failure never hidden."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pplex_desktop.core.tasks import stop_task, stop_tasks


async def _dies_slowly(cancelled: asyncio.Event, let_go: asyncio.Event) -> None:
    """A task whose clean-up takes a while, as a socket's close handshake does."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.set()
        await let_go.wait()
        raise


async def test_a_caller_cancelled_while_it_waits_for_a_task_is_really_cancelled() -> None:
    cancelled, let_go = asyncio.Event(), asyncio.Event()
    loser = asyncio.create_task(_dies_slowly(cancelled, let_go), name="slow")
    went_on = False

    async def caller() -> None:
        nonlocal went_on
        await stop_task(loser)
        went_on = True  # a swallowed cancellation gets here

    running = asyncio.create_task(caller())
    await cancelled.wait()
    running.cancel()
    let_go.set()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert running.cancelled() and not went_on
    assert loser.cancelled()


async def test_a_caller_already_in_its_clean_up_still_stops_its_tasks() -> None:
    """After its own cancellation, the caller's clean-up is not cut short by the task's."""
    loser = asyncio.create_task(asyncio.Event().wait(), name="idle")
    stopped = False

    async def caller() -> None:
        nonlocal stopped
        try:
            await asyncio.Event().wait()
        finally:
            await stop_task(loser)
            stopped = True

    running = asyncio.create_task(caller())
    await asyncio.sleep(0)  # let it reach its wait
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert stopped and loser.cancelled()


@pytest.mark.expect_error_logs
async def test_a_task_that_failed_is_logged_once_not_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise ValueError("a bug")

    failed = asyncio.create_task(broken(), name="usage-flush")
    idle = asyncio.create_task(asyncio.Event().wait(), name="idle")
    await asyncio.sleep(0)
    with caplog.at_level(logging.DEBUG, logger="pplex_desktop.core.tasks"):
        await stop_tasks([failed, idle])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["The task usage-flush failed; it has been stopped."]
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], ValueError)
    assert idle.cancelled()


async def test_an_expected_failure_is_only_a_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    async def lost() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionResetError("peer gone") from None

    task = asyncio.create_task(lost(), name="pump-down")
    await asyncio.sleep(0)
    with caplog.at_level(logging.DEBUG, logger="pplex_desktop.core.tasks"):
        await stop_task(task, expected=(ConnectionError,))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
