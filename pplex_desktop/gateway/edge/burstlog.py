"""Logging that an attacker cannot turn into a flood: one line per burst, not per connection.

A slowloris or a script sending broken requests produces thousands of identical events a
second; logged one by one they fill the disk (81,453 asyncio lines, 36 MB, in one hold). Each
kind of event is logged when it first happens, and then at most once a window with a count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 10.0


@dataclass
class _Burst:
    started: float
    level: int
    count: int = 0
    example: str = ""
    addresses: set[str] = field(default_factory=set)


class BurstLog:
    """Counts events by kind and writes at most one line per kind per window."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._window_s = window_s
        self._clock = clock
        self._bursts: dict[str, _Burst] = {}

    def event(self, kind: str, address: str, sentence: str, level: int = logging.WARNING) -> None:
        """Record one event; ``sentence`` describes it, never quoting what the client sent."""
        now = self._clock()
        burst = self._bursts.get(kind)
        if burst is not None and now - burst.started >= self._window_s:
            self._summarize(burst)
            burst = None
        if burst is None:
            # The first of a burst is logged at once so the operator sees it start.
            self._bursts[kind] = _Burst(now, level)
            self._log.log(level, "%s", sentence)
            return
        burst.count += 1
        burst.example = sentence
        if len(burst.addresses) < 5:
            burst.addresses.add(address)

    def flush(self) -> None:
        """Write every pending count (at shutdown)."""
        for burst in self._bursts.values():
            self._summarize(burst)
        self._bursts.clear()

    def tick(self) -> None:
        """Summarize the bursts whose window has passed."""
        now = self._clock()
        for kind, burst in list(self._bursts.items()):
            if now - burst.started >= self._window_s:
                self._summarize(burst)
                del self._bursts[kind]

    def _summarize(self, burst: _Burst) -> None:
        if burst.count == 0:
            return
        seconds = max(self._clock() - burst.started, 0.0)
        self._log.log(
            burst.level,
            "%d more in %.0f s from %s; the last: %s",
            burst.count,
            seconds,
            ", ".join(sorted(burst.addresses)) or "unknown addresses",
            burst.example,
        )


class AcceptErrorFilter(logging.Filter):
    """Asyncio logs every failed accept() at EMFILE; let one through per window, with a count.

    The connection limit keeps the gateway below its open-file limit, so this is the last line
    of defence, for files something else in the process opened.
    """

    MARKER = "out of system resource"

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        super().__init__("pplex-accept-errors")
        self._window_s = window_s
        self._clock = clock
        self._last = -window_s
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.MARKER not in str(record.msg):
            return True
        now = self._clock()
        if now - self._last < self._window_s:
            self._suppressed += 1
            return False
        self._last = now
        if self._suppressed:
            record.msg = f"{record.msg} ({self._suppressed} more were not logged)"
            self._suppressed = 0
        # No traceback: it is the same OSError every time and says nothing more.
        record.exc_info = None
        record.exc_text = None
        return True


def install_accept_filter() -> None:
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptErrorFilter) for f in logger.filters):
        logger.addFilter(AcceptErrorFilter())
