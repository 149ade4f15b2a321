"""What the next files are sent with: personas, voices, seed, trailing silence, where answers go.

Several personas and several voices may be ticked at once: every file is then sent once per
pair, a small evaluation matrix (two voices × three files = six jobs).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.core.personas import PRESETS
from pplex_desktop.core.settings import MAX_SILENCE_S, Settings
from pplex_desktop.desktop.offline_files import persona_title, voice_id
from pplex_desktop.ui.offline.offline_queue import BatchChoice
from pplex_desktop.ui.widgets.widgets import label

LIST_HEIGHT = 104
LIST_MIN_HEIGHT = 56  # three rows: the page does not scroll, so its parts may shrink
SPIN_WIDTH = 130
NO_SEED = -1
MAX_SEED = 2**31 - 1


def _checkable(text: str, data: str, tooltip: str, checked: bool) -> QListWidgetItem:
    item = QListWidgetItem(text)
    item.setData(Qt.ItemDataRole.UserRole, data)
    item.setToolTip(tooltip)
    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
    item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
    return item


def _ticked(widget: QListWidget) -> list[str]:
    return [
        str(widget.item(row).data(Qt.ItemDataRole.UserRole))
        for row in range(widget.count())
        if widget.item(row).checkState() == Qt.CheckState.Checked
    ]


class BatchForm(QGroupBox):
    changed = Signal()  # the choice (and so the number of jobs per file) changed

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__("Send new files with", parent)
        self.out_dir: Path | None = None
        # Voices ticked last time that the gateway has not listed yet (it lists them once it runs).
        self._wanted_voices: set[str] = set()

        self.personas = QListWidget()
        self.personas.setObjectName("offlinePersonas")
        self.personas.setMinimumHeight(LIST_MIN_HEIGHT)
        self.personas.setMaximumHeight(LIST_HEIGHT)
        for preset in PRESETS:
            default = preset.text == settings.default_persona
            self.personas.addItem(_checkable(preset.title, preset.text, preset.text, default))
        if not any(p.text == settings.default_persona for p in PRESETS):
            self.add_persona(settings.default_persona)
        self.custom_persona = QLineEdit()
        self.custom_persona.setAcceptDrops(False)  # files dropped here belong to the page
        self.custom_persona.setPlaceholderText("Your own persona, e.g. You are a patient tutor…")
        self.custom_persona.returnPressed.connect(self._add_custom)
        add_persona = QPushButton("Add")
        add_persona.clicked.connect(self._add_custom)

        self.voices = QListWidget()
        self.voices.setObjectName("offlineVoices")
        self.voices.setMinimumHeight(LIST_MIN_HEIGHT)
        self.voices.setMaximumHeight(LIST_HEIGHT)
        self._default_voice = voice_id(settings.default_voice)
        known = settings.backends[0].voices if settings.backends else (settings.default_voice,)
        self.set_voices([(voice_id(v), voice_id(v)) for v in known], self._default_voice)

        self.seed = QSpinBox()
        self.seed.setRange(NO_SEED, MAX_SEED)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(NO_SEED)
        self.seed.setToolTip("Only the local engine uses a seed; model servers ignore it.")
        self.silence = QDoubleSpinBox()
        self.silence.setRange(0.0, MAX_SILENCE_S)
        self.silence.setSingleStep(0.5)
        self.silence.setDecimals(1)
        self.silence.setSuffix(" s")
        self.silence.setValue(settings.offline_silence_s)
        self.silence.setToolTip("Silence added after each file, so the model has time to answer.")
        for spin in (self.seed, self.silence):
            spin.setMaximumWidth(SPIN_WIDTH)
        self.next_to_input = QRadioButton("Next to each file")
        self.next_to_input.setChecked(True)
        self.in_folder = QRadioButton("In a folder…")
        self.in_folder.setToolTip("Choose the folder that receives every answer.")
        group = QButtonGroup(self)
        group.addButton(self.next_to_input)
        group.addButton(self.in_folder)
        self.in_folder.clicked.connect(self._choose_folder)
        self.next_to_input.clicked.connect(self._next_to_input)
        self.folder_label = label("", role="subtitle")
        self.folder_label.setWordWrap(True)

        personas = QVBoxLayout()
        personas.setSpacing(4)
        personas.addWidget(QLabel("Personas"))
        personas.addWidget(self.personas)
        custom = QHBoxLayout()
        custom.addWidget(self.custom_persona, 1)
        custom.addWidget(add_persona)
        personas.addLayout(custom)
        voices = QVBoxLayout()
        voices.setSpacing(4)
        voices.addWidget(QLabel("Voices"))
        voices.addWidget(self.voices)
        voices.addStretch(1)
        options = QFormLayout()
        options.setVerticalSpacing(4)
        options.addRow("Trailing silence", self.silence)
        options.addRow("Seed", self.seed)
        where = QVBoxLayout()
        where.setSpacing(2)
        where.addWidget(self.next_to_input)
        where.addWidget(self.in_folder)
        where.addWidget(self.folder_label)
        options.addRow("Save answers", where)
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        grid.setHorizontalSpacing(16)
        grid.addLayout(personas, 0, 0)
        grid.addLayout(voices, 0, 1)
        grid.addLayout(options, 0, 2)
        grid.setColumnStretch(0, 5)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(2, 4)

        self.personas.itemChanged.connect(lambda _item: self.changed.emit())
        self.voices.itemChanged.connect(lambda _item: self._voices_ticked())

    # -- choices ----------------------------------------------------------------------------------

    def _voices_ticked(self) -> None:
        self._wanted_voices = set()  # the user chose since: last time's ticks are history
        self.changed.emit()

    def add_persona(self, text: str, *, checked: bool = True) -> None:
        text = text.strip()
        if not text:
            return
        for row in range(self.personas.count()):
            item = self.personas.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == text:
                item.setCheckState(Qt.CheckState.Checked)
                return
        self.personas.addItem(_checkable(persona_title(text), text, text, checked))
        self.personas.scrollToBottom()

    def _add_custom(self) -> None:
        self.add_persona(self.custom_persona.text())
        self.custom_persona.clear()

    def set_voices(self, voices: list[tuple[str, str]], default: str) -> None:
        """(id, label) pairs from the gateway; ticks survive where the voice still exists."""
        ticked = set(_ticked(self.voices)) if self.voices.count() else {default}
        available = {v for v, _ in voices}
        if self._wanted_voices & available:
            ticked = set(self._wanted_voices)
            self._wanted_voices = set()
        ticked &= available
        if not ticked:
            ticked = {default}
        self.voices.blockSignals(True)
        self.voices.clear()
        for ident, text in voices:
            self.voices.addItem(_checkable(text, ident, ident, ident in ticked))
        self.voices.blockSignals(False)
        self.changed.emit()

    def ticked(self) -> tuple[list[str], list[str]]:
        """The ticked personas (their whole text) and voices."""
        return _ticked(self.personas), _ticked(self.voices)

    def restore(self, personas: list[str], voices: list[str]) -> None:
        """Tick what was ticked last time; personas of one's own come back into the list."""
        known = {
            str(self.personas.item(r).data(Qt.ItemDataRole.UserRole))
            for r in range(self.personas.count())
        }
        wanted = [p.strip() for p in personas if isinstance(p, str) and p.strip()]
        if wanted:
            for text in wanted:
                if text not in known:
                    self.add_persona(text)
            self.tick(self.personas, wanted)
        chosen = {v for v in voices if isinstance(v, str)}
        listed = {
            str(self.voices.item(r).data(Qt.ItemDataRole.UserRole))
            for r in range(self.voices.count())
        }
        if chosen & listed:
            self.tick(self.voices, sorted(chosen))
        # Some are not listed yet: the gateway's own list, once it runs, ticks them all.
        self._wanted_voices = chosen if chosen - listed else set()

    def tick(self, widget: QListWidget, values: list[str]) -> None:
        """Tick exactly ``values`` in one of the lists (tests and scripted batches)."""
        for row in range(widget.count()):
            item = widget.item(row)
            on = item.data(Qt.ItemDataRole.UserRole) in values
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the answers in")
        if folder:
            self.set_out_dir(Path(folder))
        elif self.out_dir is None:
            self.next_to_input.setChecked(True)

    def _next_to_input(self) -> None:
        self.set_out_dir(None)

    def set_out_dir(self, folder: Path | None) -> None:
        self.out_dir = folder
        (self.in_folder if folder is not None else self.next_to_input).setChecked(True)
        self.folder_label.setText(str(folder) if folder is not None else "")
        self.folder_label.setToolTip(str(folder) if folder is not None else "")

    def jobs_per_file(self) -> tuple[int, int]:
        return len(_ticked(self.personas)), len(_ticked(self.voices))

    def choice(self) -> BatchChoice | None:
        """What was picked, or None when no persona or no voice is ticked."""
        personas, voices = _ticked(self.personas), _ticked(self.voices)
        if not personas or not voices:
            return None
        seed = self.seed.value()
        return BatchChoice(
            personas=tuple(personas),
            voices=tuple(voices),
            seed=None if seed == NO_SEED else seed,
            silence_s=round(self.silence.value(), 1),
            out_dir=self.out_dir,
        )
