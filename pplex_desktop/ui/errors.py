"""Every error reaches the user: sentences in the status bar, surprises in a dialog (once).

Expected failures are PplexError with a sentence made for the user; anything else is a bug,
logged with its traceback and shown once per kind so a repeating fault cannot bury the screen.
The app keeps running either way.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.redact import redact_text
from pplex_desktop.ui.status import StatusLine

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Unexpected:
    what: str
    error: BaseException


class ErrorReporter(QObject):
    # Other threads hand unexpected errors over through this signal: dialogs are Qt-thread only.
    _from_thread = Signal(object)
    shown = Signal(str)  # the text of each dialog shown, for tests and logs

    def __init__(self, status: StatusLine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status = status
        self._dialog_parent: QWidget | None = None
        self._seen: set[tuple[str, str]] = set()
        self._previous_hook: Callable[..., object] | None = None
        self._previous_thread_hook: Callable[[threading.ExceptHookArgs], object] | None = None
        self.dialog: QMessageBox | None = None
        self._from_thread.connect(self._show_unexpected, Qt.ConnectionType.QueuedConnection)

    def attach(self, dialog_parent: QWidget | None) -> None:
        self._dialog_parent = dialog_parent

    # -- the two kinds of error ---------------------------------------------------------------

    def user_error(self, message: str) -> None:
        """A sentence the user can act on, shown in the status bar (and logged)."""
        _log.warning("%s", message)
        self._status.post(message)

    def report(self, what: str, error: BaseException) -> None:
        """A failed operation: a PplexError is a sentence, anything else a bug."""
        if isinstance(error, PplexError):
            self.user_error(error.message)
        else:
            self.unexpected(what, error)

    def unexpected(self, what: str, error: BaseException) -> None:
        _log.error(
            "An unexpected error happened while %s.",
            what or "working",
            exc_info=(type(error), error, error.__traceback__),
        )
        if threading.current_thread() is threading.main_thread():
            self._show_unexpected(_Unexpected(what, error))
        else:
            self._from_thread.emit(_Unexpected(what, error))

    def _show_unexpected(self, item: _Unexpected) -> None:
        detail = redact_text(f"{type(item.error).__name__}: {item.error}")
        fingerprint = (type(item.error).__name__, detail)
        self._status.post(f"Something went wrong while {item.what or 'working'}: {detail}")
        if fingerprint in self._seen:
            return
        self._seen.add(fingerprint)
        text = (
            f"Something unexpected went wrong while {item.what or 'working'}.\n\n{detail}\n\n"
            "pplex-desktop keeps running; the details are in the log (Activity page)."
        )
        box = QMessageBox(
            QMessageBox.Icon.Warning, "pplex-desktop", text, parent=self._dialog_parent
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # never a nested event loop: the gateway's events keep flowing
        self.dialog = box
        self.shown.emit(text)

    # -- hooks for exceptions nobody caught ------------------------------------------------------

    def install(self) -> None:
        self._previous_hook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook

    def uninstall(self) -> None:
        if self._previous_hook is not None:
            sys.excepthook = self._previous_hook
            self._previous_hook = None
        if self._previous_thread_hook is not None:
            threading.excepthook = self._previous_thread_hook
            self._previous_thread_hook = None

    def _excepthook(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            if self._previous_hook is not None:
                self._previous_hook(exc_type, exc, tb)
            return
        self.unexpected("handling an event", exc.with_traceback(tb))

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "a background thread"
        self.unexpected(f"running {name}", args.exc_value)
