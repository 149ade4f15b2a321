"""The Talk page's "Conversation" box: the transcript, the level meters, the big talk button
and the call's figures."""

from __future__ import annotations

from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOptionButton,
    QVBoxLayout,
)

from pplex_desktop.audio.events import Levels, SessionStats, TextPiece
from pplex_desktop.audio.ptt import PttMode
from pplex_desktop.desktop.live_text import stats_text
from pplex_desktop.ui.widgets.level_meter import LevelMeter
from pplex_desktop.ui.widgets.widgets import label, styled

# Everything the big button can say: it is sized for the longest, so it never clips or resizes.
TALK_LABELS = (
    "Microphone open",
    "Open mic: the model hears you",
    "Talking… (release to stop)",
    "Hold to talk (Space)",
    "Talking… (press to stop)",
    "Press to talk (Space)",
)


class ConversationBox(QGroupBox):
    talk_pressed = Signal()
    talk_released = Signal()

    def __init__(self) -> None:
        super().__init__("Conversation")
        layout = QVBoxLayout(self)
        self.transcript = QPlainTextEdit()
        self.transcript.setObjectName("transcript")
        self.transcript.setReadOnly(True)
        self.transcript.setPlaceholderText("The model's words appear here as it speaks.")
        layout.addWidget(self.transcript, 1)
        meters = QGridLayout()
        meters.setHorizontalSpacing(10)
        self.input_meter = LevelMeter()
        self.input_meter.setObjectName("inputMeter")
        self.output_meter = LevelMeter()
        self.output_meter.setObjectName("outputMeter")
        meters.addWidget(label("You"), 0, 0)
        meters.addWidget(self.input_meter, 0, 1)
        meters.addWidget(label("Model"), 1, 0)
        meters.addWidget(self.output_meter, 1, 1)
        # Beside the model's meter, not the big button: the button keeps the whole width.
        self.mute_check = QCheckBox("Mute speaker")
        meters.addWidget(self.mute_check, 1, 2)
        meters.setColumnStretch(1, 1)
        layout.addLayout(meters)
        self.talk_button = QPushButton()
        self.talk_button.setObjectName("talkButton")
        self.talk_button.pressed.connect(self.talk_pressed)
        self.talk_button.released.connect(self.talk_released)
        layout.addWidget(self.talk_button)
        # Wraps instead of widening the column: a long figure line must not move the layout.
        self.stats_label = label(role="caption", wrap=True)
        self.stats_label.setObjectName("talkStats")
        self.stats_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stats_label.setToolTip(
            "Round trip: from your voice reaching the microphone to hearing the model's answer to "
            "it (what the recording shows); network and model: from sending 80 ms of your voice "
            "to the arrival of the answering frame. "
            "Buffer: the model's voice waiting to play, against its target. Underruns: times "
            "the speaker ran dry."
        )
        layout.addWidget(self.stats_label)

    def showEvent(self, event: QShowEvent) -> None:
        # Sizes from the fonts the style sheet gives, known once the widgets are polished.
        self._fix_sizes()
        super().showEvent(event)

    def _fix_sizes(self) -> None:
        """The talk button as wide as its longest text and room for two lines of figures, so
        the layout does not jump when a call starts or ends and no label is ever cut."""
        button = self.talk_button
        button.ensurePolished()
        metrics = button.fontMetrics()
        option = QStyleOptionButton()
        option.initFrom(button)
        widest = max(metrics.horizontalAdvance(text) for text in TALK_LABELS)
        size = button.style().sizeFromContents(
            QStyle.ContentsType.CT_PushButton,
            option,
            QSize(widest, metrics.height()),
            button,
        )
        button.setMinimumWidth(size.width() + 2 * metrics.averageCharWidth())
        self.stats_label.ensurePolished()
        self.stats_label.setMinimumHeight(2 * self.stats_label.fontMetrics().lineSpacing())

    def start(self) -> None:
        """A new call: an empty transcript, no figures yet."""
        self.transcript.clear()
        self.stats_label.clear()

    def add_text(self, piece: TextPiece) -> None:
        text = piece.text
        if self.transcript.document().isEmpty():
            text = text.lstrip()
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.transcript.setTextCursor(cursor)
        self.transcript.ensureCursorVisible()

    def show_levels(self, levels: Levels) -> None:
        self.input_meter.set_levels(levels.input_rms, levels.input_peak)
        self.output_meter.set_levels(levels.output_rms, levels.output_peak)

    def silence(self) -> None:
        self.input_meter.set_levels(0.0, 0.0)
        self.output_meter.set_levels(0.0, 0.0)

    def show_stats(self, stats: SessionStats) -> None:
        self.stats_label.setText(stats_text(stats))

    def show_talk(self, mode: PttMode, *, live: bool, wants: bool) -> None:
        """The big button for ``mode``: what it does, whether it can, and whether you talk."""
        if mode is PttMode.OPEN:
            text = TALK_LABELS[0] if live else TALK_LABELS[1]
        elif mode is PttMode.HOLD:
            text = TALK_LABELS[2] if wants else TALK_LABELS[3]
        else:
            text = TALK_LABELS[4] if wants else TALK_LABELS[5]
        self.talk_button.setText(text)
        self.talk_button.setEnabled(live and mode is not PttMode.OPEN)
        talking = "true" if live and wants else "false"
        if self.talk_button.property("talking") != talking:
            styled(self.talk_button, talking=talking)
