"""Loaded only into the app a journey starts, when PPLEX_JOURNEY_SLOW_JOBS asks for it: every
thread-pool job (the disk thread, ``asyncio.to_thread``) starts that many seconds late, as on a
loaded machine. A journey that acts on the screen before the work behind it has finished fails
here at once, instead of once in a few dozen CI runs."""

from __future__ import annotations

import concurrent.futures.thread as pool
import os
import time

DELAY_S = float(os.environ.get("PPLEX_JOURNEY_SLOW_JOBS") or 0)

if DELAY_S > 0:
    _run = pool._WorkItem.run

    def _late_run(self: pool._WorkItem) -> None:  # type: ignore[type-arg]
        time.sleep(DELAY_S)
        _run(self)

    pool._WorkItem.run = _late_run  # type: ignore[method-assign]
