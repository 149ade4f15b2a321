"""The Talk page's "Talking" box: how the microphone opens, ducking, recording, echo."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QRadioButton,
    QVBoxLayout,
)

from pplex_desktop.audio.echo import EchoSettings
from pplex_desktop.audio.events import EchoHeard
from pplex_desktop.audio.ptt import PttMode
from pplex_desktop.desktop.live_text import MODE_HINTS
from pplex_desktop.ui.talk.talk_memory import TalkMemory
from pplex_desktop.ui.widgets.widgets import label

# About -12 dB: the model stays audible under your voice without talking over you.
DUCK_GAIN = 0.25
# Alt+M, Alt+T, Alt+L: the modes are reachable from the keyboard too (Alt+G is the Gateway menu).
MODE_LABELS = {PttMode.OPEN: "Open &mic", PttMode.HOLD: "Hold to &talk", PttMode.TOGGLE: "Togg&le"}


class TalkingBox(QGroupBox):
    mode_chosen = Signal(object)  # PttMode
    duck_changed = Signal(object)  # the gain while you talk, or None
    choices_changed = Signal()  # what may be changed next depends on it (headphones)

    def __init__(self, memory: TalkMemory) -> None:
        super().__init__("Talking")
        self._memory = memory
        layout = QVBoxLayout(self)
        modes = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        self.mode_buttons: dict[PttMode, QRadioButton] = {}
        for mode in PttMode:
            button = QRadioButton(MODE_LABELS[mode])
            button.setToolTip(MODE_HINTS[mode])
            self.mode_buttons[mode] = button
            self.mode_group.addButton(button)
            modes.addWidget(button)
            button.toggled.connect(lambda on, m=mode: self._mode_toggled(m, on))
        modes.addStretch(1)
        layout.addLayout(modes)
        self.duck_check = QCheckBox("Duck the model while I talk")
        self.duck_check.setToolTip("Turn the model down while your microphone hears you.")
        self.record_check = QCheckBox("&Record this conversation")
        self.record_check.setToolTip(
            "Save a stereo WAV (left: you, as the model heard you; right: the model, as you "
            "heard it) and the transcript, listed under Recordings."
        )
        layout.addWidget(self.duck_check)
        layout.addWidget(self.record_check)
        self.echo_check = QCheckBox("&Echo cancellation")
        self.echo_check.setToolTip(
            "Remove the model's voice from your microphone, so that on speakers it does not "
            "hear itself."
        )
        self.headphones_check = QCheckBox("Head&phones")
        self.headphones_check.setToolTip(
            "The microphone cannot hear the model: no echo cancellation, the lowest latency."
        )
        self.noise_check = QCheckBox("&Noise suppression")
        self.noise_check.setToolTip("Reduce steady background noise (fans, hum) in your voice.")
        echo_row = QHBoxLayout()
        for box in (self.echo_check, self.headphones_check, self.noise_check):
            echo_row.addWidget(box)
        echo_row.addStretch(1)
        layout.addLayout(echo_row)
        # Shown when the model hears itself anyway: what to do, in a sentence.
        self.echo_label = label(role="caption", wrap=True)
        self.echo_label.setObjectName("echoWarning")
        self.echo_label.setVisible(False)
        layout.addWidget(self.echo_label)
        self.echo_check.toggled.connect(lambda on: memory.remember("echo", on))
        self.headphones_check.toggled.connect(self._headphones_toggled)
        self.noise_check.toggled.connect(lambda on: memory.remember("noise", on))
        self.duck_check.toggled.connect(self._duck_toggled)
        self.record_check.toggled.connect(lambda on: memory.remember("record", on))
        self._restore()

    def _restore(self) -> None:
        memory = self._memory
        mode = memory.recall("mode", PttMode.OPEN.value)
        known = {m.value for m in PttMode}
        self.mode_buttons[PttMode(mode) if mode in known else PttMode.OPEN].setChecked(True)
        self.duck_check.setChecked(memory.recall("duck", False))
        self.record_check.setChecked(memory.recall("record", False))
        self.echo_check.setChecked(memory.recall("echo", True))
        self.noise_check.setChecked(memory.recall("noise", False))
        self.headphones_check.setChecked(memory.recall("headphones", False))

    @property
    def mode(self) -> PttMode:
        return next((m for m, b in self.mode_buttons.items() if b.isChecked()), PttMode.OPEN)

    @property
    def duck_gain(self) -> float | None:
        return DUCK_GAIN if self.duck_check.isChecked() else None

    @property
    def record(self) -> bool:
        return self.record_check.isChecked()

    @property
    def echo_settings(self) -> EchoSettings:
        """Headphones turn all processing off: nothing to cancel, and no latency added."""
        if self.headphones_check.isChecked():
            return EchoSettings(cancel=False, noise_suppression=False)
        return EchoSettings(
            cancel=self.echo_check.isChecked(), noise_suppression=self.noise_check.isChecked()
        )

    def _mode_toggled(self, mode: PttMode, on: bool) -> None:
        if on:
            self._memory.remember("mode", mode.value)
            self.mode_chosen.emit(mode)

    def _duck_toggled(self, on: bool) -> None:
        self._memory.remember("duck", on)
        self.duck_changed.emit(self.duck_gain)

    def _headphones_toggled(self, on: bool) -> None:
        self._memory.remember("headphones", on)
        self.choices_changed.emit()

    def show_echo(self, event: EchoHeard) -> None:
        self.echo_label.setText(event.sentence)
        self.echo_label.setVisible(event.heard)

    def hide_echo(self) -> None:
        self.echo_label.setVisible(False)

    def set_active(self, active: bool) -> None:
        """Recording and echo processing are chosen before a call; the mode and ducking can
        change during one."""
        self.record_check.setEnabled(not active)
        headphones = self.headphones_check.isChecked()
        self.headphones_check.setEnabled(not active)
        self.echo_check.setEnabled(not active and not headphones)
        self.noise_check.setEnabled(not active and not headphones)
