"""The Talk page's "Persona and voice" box: who the model is, and the voice it speaks with."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QPlainTextEdit, QVBoxLayout

from pplex_desktop.core.personas import DEFAULT_PERSONA, PRESETS
from pplex_desktop.core.voices import DEFAULT_VOICES, voice_entry
from pplex_desktop.ui.talk.live_session import Voice, VoiceList
from pplex_desktop.ui.talk.talk_memory import TalkMemory
from pplex_desktop.ui.widgets.widgets import styled

CUSTOM_PERSONA = "Custom"


class PersonaBox(QGroupBox):
    persona_changed = Signal()

    def __init__(self, memory: TalkMemory, default_voice: Callable[[], str]) -> None:
        super().__init__("Persona and voice")
        self._memory = memory
        self._default_voice = default_voice  # the gateway's, read when a list arrives
        layout = QVBoxLayout(self)
        self.preset_combo = QComboBox()
        for preset in PRESETS:
            self.preset_combo.addItem(preset.title, preset.text)
        self.preset_combo.addItem(CUSTOM_PERSONA, None)
        self.preset_combo.setToolTip("Start from a preset; edit the text below to make it yours.")
        layout.addWidget(self.preset_combo)
        self.persona_edit = QPlainTextEdit()
        self.persona_edit.setObjectName("personaEdit")
        self.persona_edit.setPlaceholderText("Who the model is and what it knows.")
        self.persona_edit.setTabChangesFocus(True)
        self.persona_edit.setMinimumHeight(64)
        self.persona_edit.setMaximumHeight(110)
        layout.addWidget(self.persona_edit)
        voice_row = QFormLayout()
        self.voice_combo = QComboBox()
        self.voice_combo.setObjectName("voiceCombo")
        self.fill_voices(VoiceList(tuple(_voice(v) for v in DEFAULT_VOICES), None))
        voice_row.addRow("Voice", self.voice_combo)
        layout.addLayout(voice_row)
        self.preset_combo.activated.connect(self._preset_chosen)
        self.persona_edit.textChanged.connect(self._persona_edited)
        self.voice_combo.activated.connect(lambda _i: memory.remember("voice", self.voice))

        self.persona_edit.setPlainText(memory.recall("persona", DEFAULT_PERSONA))
        self._persona_edited()
        self.select_voice(memory.recall("voice", ""), default_voice())

    @property
    def persona(self) -> str:
        return self.persona_edit.toPlainText().strip()

    @property
    def voice(self) -> str:
        return str(self.voice_combo.currentData() or "")

    def _preset_chosen(self, index: int) -> None:
        text = self.preset_combo.itemData(index)
        if isinstance(text, str):
            self.persona_edit.setPlainText(text)

    def _persona_edited(self) -> None:
        text = self.persona
        index = next(
            (i for i in range(len(PRESETS)) if self.preset_combo.itemData(i) == text),
            self.preset_combo.count() - 1,
        )
        self.preset_combo.setCurrentIndex(index)
        self._memory.remember("persona", text)
        self.persona_changed.emit()

    def fill_voices(self, voices: VoiceList) -> None:
        keep = self.voice
        self.voice_combo.clear()
        for voice in voices.voices:
            self.voice_combo.addItem(voice.label, voice.file)
        self.select_voice(keep, voices.default, self._default_voice())

    def select_voice(self, *candidates: str | None) -> None:
        """Select the first candidate the list has, else the first voice."""
        for file in candidates:
            index = self.voice_combo.findData(file) if file else -1
            if index >= 0:
                self.voice_combo.setCurrentIndex(index)
                return
        if self.voice_combo.count():
            self.voice_combo.setCurrentIndex(0)

    def set_active(self, active: bool) -> None:
        """During a call the persona and voice are fixed."""
        self.voice_combo.setEnabled(not active)
        self.preset_combo.setEnabled(not active)
        # Read-only rather than disabled: the text can still be selected and copied.
        edit = self.persona_edit
        if edit.isReadOnly() != active:
            edit.setReadOnly(active)
            styled(edit, locked="true" if active else "false")
            edit.setToolTip(
                "The persona is fixed for this conversation; hang up to change it."
                if active
                else "Who the model is and what it knows; edit it before you connect."
            )


def _voice(file: str) -> Voice:
    entry = voice_entry(file)
    return Voice(entry["file"], entry["label"])
