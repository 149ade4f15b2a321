"""Small widgets and helpers the pages share."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


def styled(widget: QWidget, **properties: str) -> QWidget:
    """Set style-sheet properties (role="error"...) and make Qt re-read the sheet."""
    for name, value in properties.items():
        widget.setProperty(name, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
    return widget


def label(text: str = "", *, role: str | None = None, wrap: bool = False) -> QLabel:
    item = QLabel(text)
    if role is not None:
        item.setProperty("role", role)
    item.setWordWrap(wrap)
    return item


def selectable(item: QLabel) -> QLabel:
    item.setTextInteractionFlags(
        Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
    )
    return item


def copy_text(text: str) -> None:
    QGuiApplication.clipboard().setText(text)


class Figure(QFrame):
    """A card with a big number and a caption (the server page's live counters)."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        self.value = label("–", role="figure")
        self.caption = label(caption, role="caption")
        layout.addWidget(self.value)
        layout.addWidget(self.caption)

    def set_value(self, text: str, tooltip: str = "") -> None:
        self.value.setText(text)
        self.setToolTip(tooltip)


class ElidedLabel(QLabel):
    """One line that ends in "…" when it does not fit, with the whole text as its tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full_text = ""
        self.setMinimumWidth(40)  # never the reason a window cannot shrink
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._clear = QTimer(self)
        self._clear.setSingleShot(True)
        self._clear.timeout.connect(lambda: self.show_text(""))

    def show_text(self, text: str, ms: int = 0) -> None:
        """Show ``text``; after ``ms`` milliseconds clear it (0: keep it until replaced)."""
        self.full_text = text
        self.setToolTip(text)
        self._elide()
        if ms > 0:
            self._clear.start(ms)
        else:
            self._clear.stop()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(
            self.full_text, Qt.TextElideMode.ElideRight, max(0, self.contentsRect().width())
        )
        super().setText(shown)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()
