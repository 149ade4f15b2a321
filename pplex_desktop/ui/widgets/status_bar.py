"""The status bar: the latest message on the left, the gateway's state on the right.

Two widgets rather than QStatusBar.showMessage(), which paints a message over the permanent
widgets so a long one ran into the gateway's state. Each elides with its whole text as the
tooltip; both are permanent, so Qt's own status tips (hovering a menu) cannot hide them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStatusBar, QWidget

from pplex_desktop.ui.widgets.widgets import ElidedLabel


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_label = ElidedLabel()
        self.message_label.setObjectName("statusMessage")
        self.gateway_label = ElidedLabel()
        self.gateway_label.setObjectName("statusGateway")
        self.gateway_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.addPermanentWidget(self.message_label, 3)
        self.addPermanentWidget(self.gateway_label, 2)

    def post(self, text: str, ms: int = 0) -> None:
        self.message_label.show_text(text, ms)

    def currentMessage(self) -> str:
        return self.message_label.full_text
