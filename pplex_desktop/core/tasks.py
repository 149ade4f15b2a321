"""Stopping a program's own tasks without losing a cancellation or a failure.

``suppress(CancelledError, Exception)`` around ``await task`` looks tidy and hides two things:
the caller's own cancellation (asked while it waits for the task, it is swallowed and the
caller goes on as if nothing happened) and a real bug in the task. Here a cancellation of the
caller propagates, and a task that fails instead of stopping is logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

_log = logging.getLogger(__name__)


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], *, expected: tuple[type[BaseException], ...] = ()
) -> None:
    """Cancel ``tasks`` and wait until each has ended.

    A task that ends with an exception is logged (at debug level when it is one of
    ``expected``, such as a connection lost while it was being stopped) and not re-raised: the
    caller is tearing down and must get to its end. Raises CancelledError only when the caller
    itself is cancelled while it waits.
    """
    tasks = list(tasks)
    for task in tasks:
        task.cancel()  # a task that already ended ignores this; its outcome is collected below
    current = asyncio.current_task()
    # A caller in its own clean-up after a cancellation has a count already: only a new
    # request, made while it waits here, is its cancellation to pass on.
    before = current.cancelling() if current is not None else 0
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and (current.cancelling() > before or not task.done()):
                raise
        except expected as exc:
            _log.debug("The task %s ended with %r while it was stopped.", task.get_name(), exc)
        except Exception:  # noqa: BLE001 (logged: a bug in one task must not stop the clean-up)
            _log.exception("The task %s failed; it has been stopped.", task.get_name())


async def stop_task(
    task: asyncio.Task[Any], *, expected: tuple[type[BaseException], ...] = ()
) -> None:
    await stop_tasks((task,), expected=expected)
