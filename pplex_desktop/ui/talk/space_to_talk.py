"""Space as the push-to-talk key while the Talk page is on screen, except where people type.

An application event filter rather than a shortcut: a shortcut fires on press only, and the
focused widget (a button, a list) would otherwise eat the key. The filter only looks at key
events for widgets of the page's own window, and only while ``armed()`` says a conversation
wants the key; typing a space into the persona box, a spin box or a line edit stays typing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

_KEY_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)


def is_typing_into(widget: QWidget | None) -> bool:
    """Whether a key press on ``widget`` (or the editor it belongs to) types text."""
    while widget is not None:
        if isinstance(widget, QLineEdit | QAbstractSpinBox):
            return True
        if isinstance(widget, QPlainTextEdit | QTextEdit) and not widget.isReadOnly():
            return True
        if isinstance(widget, QComboBox) and widget.isEditable():
            return True
        if widget.isWindow():
            return False
        widget = widget.parentWidget()
    return False


class SpaceToTalk(QObject):
    pressed = Signal()
    released = Signal()

    def __init__(
        self, page: QWidget, armed: Callable[[], bool], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._page = page
        self._armed = armed
        self._installed = False
        self.held = False

    def install(self) -> None:
        app = QApplication.instance()
        if app is not None and not self._installed:
            app.installEventFilter(self)
            self._installed = True

    def uninstall(self) -> None:
        app = QApplication.instance()
        if app is not None and self._installed:
            app.removeEventFilter(self)
            self._installed = False
        self.let_go()

    def let_go(self) -> None:
        """Release a held key whose release we will never see (focus left, page hidden)."""
        if self.held:
            self.held = False
            self.released.emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.ApplicationDeactivate:
            self.let_go()
            return False
        if kind not in _KEY_EVENTS or not isinstance(event, QKeyEvent):
            return False
        if event.key() != Qt.Key.Key_Space or not isinstance(watched, QWidget):
            return False
        if watched.window() is not self._page.window():
            return False
        if kind == QEvent.Type.KeyRelease:
            if not self.held:
                return False
            # Auto-repeat sends release/press pairs while the key stays down: not a release.
            if not event.isAutoRepeat():
                self.held = False
                self.released.emit()
            return True
        if not self._page.isVisible() or not self._armed():
            return False
        if event.modifiers() not in (Qt.KeyboardModifier.NoModifier,):
            return False
        if is_typing_into(watched):
            return False
        if not event.isAutoRepeat() and not self.held:
            self.held = True
            self.pressed.emit()
        return True
