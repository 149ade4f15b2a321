"""The Talk page's "Sound" box: microphone, speaker, and how much of the model's voice is kept
ready before it plays."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QPushButton, QSpinBox

from pplex_desktop.audio.jitter import MAX_TARGET_MS, MIN_TARGET_MS
from pplex_desktop.audio.portaudio import DeviceInfo, DeviceSpec
from pplex_desktop.desktop.live_audio import DeviceScan
from pplex_desktop.ui.talk.talk_memory import TalkMemory

SYSTEM_DEFAULT = "System default"
JITTER_STEP_MS = 20
JITTER_MIN_MS = int(MIN_TARGET_MS)  # one step above "Adaptive"
JITTER_ADAPTIVE = 0  # the spin box's special value


def jitter_target(value: int) -> float | None:
    """The spin box's value as a buffer target: None (adaptive) for 0, else a fixed target."""
    return None if value == JITTER_ADAPTIVE else float(max(value, JITTER_MIN_MS))


class SoundBox(QGroupBox):
    def __init__(self, memory: TalkMemory) -> None:
        super().__init__("Sound")
        self._memory = memory
        form = QFormLayout(self)
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("inputCombo")
        self.output_combo = QComboBox()
        self.output_combo.setObjectName("outputCombo")
        for combo in (self.input_combo, self.output_combo):
            combo.addItem(SYSTEM_DEFAULT, None)
            combo.setMinimumContentsLength(18)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look again for microphones and speakers (hot-plug).")
        mic_row = QHBoxLayout()
        mic_row.addWidget(self.input_combo, 1)
        mic_row.addWidget(self.refresh_button)
        form.addRow("Microphone", mic_row)
        form.addRow("Speaker", self.output_combo)
        self.jitter_spin = QSpinBox()
        # 0 is "Adaptive": the buffer follows the network's jitter by itself.
        self.jitter_spin.setRange(JITTER_ADAPTIVE, int(MAX_TARGET_MS))
        self.jitter_spin.setSingleStep(JITTER_STEP_MS)
        self.jitter_spin.setSuffix(" ms")
        self.jitter_spin.setSpecialValueText("Adaptive")
        self.jitter_spin.setValue(JITTER_ADAPTIVE)
        self.jitter_spin.setToolTip(
            "How much of the model's voice is kept ready before it plays. Adaptive follows the "
            "network by itself; a fixed value: lower answers sooner, higher rides over hiccups."
        )
        form.addRow("Playback buffer", self.jitter_spin)
        self.input_combo.activated.connect(
            lambda _i: memory.remember("input", self.input_combo.currentText())
        )
        self.output_combo.activated.connect(
            lambda _i: memory.remember("output", self.output_combo.currentText())
        )
        self.jitter_spin.valueChanged.connect(lambda value: memory.remember("jitter_ms", value))
        self.jitter_spin.setValue(memory.recall("jitter_ms", JITTER_ADAPTIVE))

    @property
    def jitter_target_ms(self) -> float | None:
        return jitter_target(self.jitter_spin.value())

    @property
    def input_device(self) -> DeviceSpec:
        return _device(self.input_combo)

    @property
    def output_device(self) -> DeviceSpec:
        return _device(self.output_combo)

    def show_devices(self, scan: DeviceScan) -> None:
        self._fill(self.input_combo, scan.inputs, "input")
        self._fill(self.output_combo, scan.outputs, "output")

    def _fill(self, combo: QComboBox, found: tuple[DeviceInfo, ...], kind: str) -> None:
        # The first scan selects the remembered device; a later one keeps the one selected.
        wanted = (
            combo.currentText() if combo.count() > 1 else self._memory.recall(kind, SYSTEM_DEFAULT)
        )
        combo.clear()
        combo.addItem(SYSTEM_DEFAULT, None)
        for device in found:
            combo.addItem(device.name, device.spec)
            combo.setItemData(
                combo.count() - 1,
                f"{device.name} ({device.hostapi}, {device.default_samplerate:g} Hz)",
                Qt.ItemDataRole.ToolTipRole,
            )
        combo.setCurrentIndex(max(combo.findText(wanted), 0))

    def set_state(self, *, usable: bool, active: bool, scanning: bool) -> None:
        """Devices are chosen between calls, once a scan found them."""
        for combo in (self.input_combo, self.output_combo):
            combo.setEnabled(usable and not active)
        self.refresh_button.setEnabled(not active and not scanning)


def _device(combo: QComboBox) -> DeviceSpec:
    data = combo.currentData()
    return data if isinstance(data, int | str) else None
