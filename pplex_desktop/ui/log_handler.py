"""Log records from any thread, carried to the Qt thread for the log view."""

from __future__ import annotations

import logging
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
    line = Signal(object)  # LogLine

    def __init__(self) -> None:
        super().__init__()
        # Lines logged before a log view exists (start-up) are shown when it opens.
        self.backlog: deque[LogLine] = deque(maxlen=BACKLOG)
        # Direct: deque.append is thread-safe, and the backlog is current when a view reads it.
        self.line.connect(self._keep, Qt.ConnectionType.DirectConnection)

    def _keep(self, line: LogLine) -> None:
        self.backlog.append(line)


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
            self.carrier.line.emit(line)
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
