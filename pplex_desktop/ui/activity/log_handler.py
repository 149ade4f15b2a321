"""Log records from any thread, carried to the Qt thread for the log view."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Signal

from pplex_desktop.core.redact import redact_text

APP_LOGGER = "pplex_desktop"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
BACKLOG = 500


@dataclass(frozen=True, slots=True)
class LogLine:
    created: float
    level: str
    levelno: int
    logger: str
    text: str


class _Carrier(QObject):
    """Hands lines to the Qt thread in batches: a burst of access logs costs one wake-up."""

    lines = Signal(object)  # list[LogLine], on the Qt thread
    _wake = Signal()

    def __init__(self) -> None:
        super().__init__()
        # Lines logged before a log view exists (start-up) are shown when it opens.
        self.backlog: deque[LogLine] = deque(maxlen=BACKLOG)
        self._pending: deque[LogLine] = deque(maxlen=BACKLOG)
        self._lock = threading.Lock()
        self._woken = False
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)

    def add(self, line: LogLine) -> None:
        """Any thread: keep the line and wake the Qt thread unless a wake-up is pending."""
        self.backlog.append(line)
        with self._lock:
            self._pending.append(line)
            if self._woken:
                return
            self._woken = True
        self._wake.emit()

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._woken = False
        if batch:
            self.lines.emit(batch)


class QtLogHandler(logging.Handler):
    """Formats in the logging thread, then only emits a signal (Qt queues it across threads)."""

    def __init__(self) -> None:
        super().__init__()
        self.carrier = _Carrier()
        self._open = True

    def emit(self, record: logging.LogRecord) -> None:
        if not self._open:
            return
        try:
            text = redact_text(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            line = LogLine(record.created, record.levelname, record.levelno, record.name, text)
            self.carrier.add(line)
        except RuntimeError:
            self._open = False  # the carrier is gone: the app is quitting
        except Exception:  # noqa: BLE001 (logging must never raise into the caller)
            self.handleError(record)

    def close(self) -> None:
        self._open = False
        super().close()


def install(handler: QtLogHandler) -> None:
    logging.getLogger(APP_LOGGER).addHandler(handler)


def uninstall(handler: QtLogHandler) -> None:
    logging.getLogger(APP_LOGGER).removeHandler(handler)
    handler.close()


def set_app_level(name: str) -> None:
    logging.getLogger(APP_LOGGER).setLevel(getattr(logging, name))


def app_level() -> str:
    return logging.getLevelName(logging.getLogger(APP_LOGGER).getEffectiveLevel())
