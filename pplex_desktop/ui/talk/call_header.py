"""The top of the Talk page: the conversation's state, Connect / Hang up, and why not."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from pplex_desktop.audio.events import ConversationState
from pplex_desktop.desktop.live_text import TITLES
from pplex_desktop.ui.widgets.widgets import label, selectable, styled


class CallHeader(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(10)  # the page's, which the header's rows had as its inner layouts
        row = QHBoxLayout()
        self.state_label = label(TITLES[ConversationState.IDLE], role="state")
        self.state_label.setObjectName("talkState")
        row.addWidget(self.state_label, 1)
        self.connect_button = QPushButton("C&onnect")
        self.connect_button.setObjectName("connectButton")
        self.connect_button.setDefault(True)
        self.hangup_button = QPushButton("Hang &up")
        self.hangup_button.setObjectName("hangupButton")
        row.addWidget(self.connect_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.hangup_button, 0, Qt.AlignmentFlag.AlignTop)
        box.addLayout(row)
        self.detail_label = selectable(label(role="subtitle", wrap=True))
        self.detail_label.setObjectName("talkDetail")
        box.addWidget(self.detail_label)
        self.blocker_label = label(role="error", wrap=True)
        self.blocker_label.setObjectName("talkBlocker")
        box.addWidget(self.blocker_label)

    def showEvent(self, event: QShowEvent) -> None:
        # Sizes from the fonts the style sheet gives, known once the widgets are polished.
        self._fix_sizes()
        super().showEvent(event)

    def _fix_sizes(self) -> None:
        """One width for both buttons and room for two lines of the reason a call ended, so the
        layout does not jump when a call starts or ends."""
        buttons = (self.connect_button, self.hangup_button)
        width = max(b.sizeHint().width() for b in buttons)
        for b in buttons:
            b.setFixedWidth(width)
        self.detail_label.ensurePolished()
        self.detail_label.setMinimumHeight(2 * self.detail_label.fontMetrics().lineSpacing())

    def show_state(self, state: ConversationState, detail: str) -> None:
        self.state_label.setText(TITLES[state])
        styled(self.state_label, talk=state.value)
        self.detail_label.setText(detail)

    def show_controls(self, active: bool, blocker: str | None) -> None:
        """Connect while idle (disabled, with the reason, while ``blocker`` says why), Hang up
        during a call."""
        self.connect_button.setVisible(not active)
        self.connect_button.setEnabled(blocker is None)
        self.connect_button.setToolTip(blocker or "Start a conversation with the model.")
        self.hangup_button.setVisible(active)
        self.hangup_button.setEnabled(active)
        self.blocker_label.setText(blocker or "")
        self.blocker_label.setVisible(bool(blocker))
