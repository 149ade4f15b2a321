"""Short messages for the status bar, from anywhere on the Qt thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

MESSAGE_MS = 8_000


class StatusLine(QObject):
    posted = Signal(str, int)  # text, milliseconds to keep it (0: until replaced)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.last = ""

    def post(self, text: str, ms: int = MESSAGE_MS) -> None:
        self.last = text
        self.posted.emit(text, ms)
