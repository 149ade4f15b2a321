"""The Settings dialog's Voices tab: record or import a voice, listen, name it, consent, save.

Saving goes through ``GatewayServer.add_voice_future``: the same checks, preparation and
consent record as ``POST /admin/voices``, done in-process as the desktop's owner ("admin").
Recording runs on the gateway's loop thread like a conversation does (the sound device's
blocks arrive there); levels come back to the Qt thread through a queued signal.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.audio.meters import LevelMeter as Levels
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.voices import CONSENT_STATEMENT, new_voice_file_name
from pplex_desktop.desktop.live_audio import AudioSystem, FilePlayer, SoundDeviceAudio
from pplex_desktop.gateway.events import VoicesChanged
from pplex_desktop.gateway.server import StoredVoice, VoiceFolder
from pplex_desktop.moshi.audiofile import write_wav
from pplex_desktop.moshi.codec import SAMPLE_RATE
from pplex_desktop.moshi.voice_check import MIN_SECONDS
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.widgets.level_meter import LevelMeter, MeterClock
from pplex_desktop.ui.widgets.widgets import label

_log = logging.getLogger(__name__)
MAX_RECORD_S = 20.0
TAKES_FOLDER = "voice-takes"
SCRIPT = (
    "Read this aloud in your normal voice, about a hand's width from the microphone:\n\n"
    "\u201cThe morning train was late again, so I walked along the river instead. The water "
    "was calm, a few boats drifted past, and somebody was playing a guitar under the bridge. "
    "By the time I reached the office I had forgotten all about the train.\u201d"
)


class VoicesTab(QWidget):
    _levels = Signal(float, float)

    def __init__(
        self, ctx: DesktopContext, audio: AudioSystem | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("voicesTab")
        self._ctx = ctx
        self._audio: AudioSystem = audio or SoundDeviceAudio()
        self._stop_recording = threading.Event()
        self._player: FilePlayer | None = None
        self.recording = False
        self.take: Path | None = None  # the recording or imported file to save
        self.saved: list[StoredVoice] = []
        self.folders: list[VoiceFolder] = []

        layout = QVBoxLayout(self)
        layout.addWidget(
            label(
                "Your own voice for the model: record 10 to 20 seconds (or import a WAV, FLAC "
                "or OGG file of 5 to 30 seconds), listen to it, name it and save it. It then "
                "appears in every voice list.",
                role="subtitle",
                wrap=True,
            )
        )
        self.script = label(SCRIPT, wrap=True)
        self.script.setObjectName("voiceScript")
        layout.addWidget(self.script)

        row = QHBoxLayout()
        self.record_button = QPushButton("&Record")
        self.record_button.setObjectName("voiceRecord")
        self.record_button.clicked.connect(self.toggle_recording)
        self.meter = LevelMeter()
        self.meter.setObjectName("voiceMeter")
        self.meter_clock = MeterClock([self.meter], self)
        self.elapsed = label("0.0 s")
        self.elapsed.setObjectName("voiceElapsed")
        self.import_button = QPushButton("Import a file…")
        self.import_button.setObjectName("voiceImport")
        self.import_button.clicked.connect(self._choose_file)
        self.listen_button = QPushButton("&Listen")
        self.listen_button.setObjectName("voiceListen")
        self.listen_button.clicked.connect(self.listen)
        for widget in (self.record_button, self.meter, self.elapsed):
            row.addWidget(widget)
        row.addWidget(self.import_button)
        row.addWidget(self.listen_button)
        layout.addLayout(row)
        self.take_label = label("Nothing recorded yet.", wrap=True)
        self.take_label.setObjectName("voiceTake")
        layout.addWidget(self.take_label)

        form = QHBoxLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("voiceName")
        self.name_edit.setPlaceholderText("a name, e.g. my-voice")
        self.name_edit.setMaxLength(48)
        self.name_edit.textChanged.connect(lambda _text: self._update_controls())
        name_label = label("&Name")
        name_label.setBuddy(self.name_edit)  # Alt+N
        form.addWidget(name_label)
        form.addWidget(self.name_edit, 1)
        layout.addLayout(form)
        self.consent = QCheckBox(CONSENT_STATEMENT)
        self.consent.setObjectName("voiceConsent")
        self.consent.toggled.connect(lambda _on: self._update_controls())
        layout.addWidget(self.consent)
        self.save_button = QPushButton("Sa&ve voice")
        self.save_button.setObjectName("voiceSave")
        self.save_button.clicked.connect(self.save)
        layout.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.message = label(wrap=True)
        self.message.setObjectName("voiceMessage")
        layout.addWidget(self.message)

        layout.addWidget(label("Custom voices", role="subtitle"))
        self.voice_list = QListWidget()
        self.voice_list.setObjectName("voiceList")
        self.voice_list.itemSelectionChanged.connect(self._update_controls)
        layout.addWidget(self.voice_list, 1)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("voiceRemove")
        self.remove_button.clicked.connect(self.remove_selected)
        layout.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignLeft)

        self._levels.connect(self._show_levels, Qt.ConnectionType.QueuedConnection)
        ctx.bridge.any_event.connect(self._event)
        self._update_controls()
        self.refresh()

    # -- state ----------------------------------------------------------------------------------

    def _update_controls(self) -> None:
        self.record_button.setText("&Stop" if self.recording else "&Record")
        self.import_button.setEnabled(not self.recording)
        self.listen_button.setEnabled(self.take is not None and not self.recording)
        writable = any(f.writable for f in self.folders)
        self.save_button.setEnabled(
            writable
            and self.take is not None
            and not self.recording
            and self.consent.isChecked()
            and bool(self.name_edit.text().strip())
        )
        item = self.voice_list.currentItem()
        self.remove_button.setEnabled(
            item is not None and bool(item.data(Qt.ItemDataRole.UserRole))
        )

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setProperty("role", "error" if error else None)
        self.message.setText(text)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, PplexError):
            self._say(error.message, error=True)
        else:
            _log.warning("A voice action failed: %s", error)
            self._say("That did not work; the log has the details.", error=True)
        self._update_controls()

    def set_take(self, path: Path, what: str) -> None:
        self.take = path
        self.take_label.setText(what)
        if not self.name_edit.text().strip():
            self.name_edit.setText(path.stem if path.stem != "take" else "")
        self._update_controls()

    # -- the voice folders ------------------------------------------------------------------------

    def _event(self, event: object) -> None:
        if isinstance(event, VoicesChanged):
            self.refresh()

    def refresh(self) -> None:
        self._ctx.bridge.call_fn(
            self._ctx.server.voice_libraries,
            on_done=self._show_folders,
            on_error=self._failed,
            what="reading the voice folders",
            read_only=True,
        )

    def _show_folders(self, folders: list[VoiceFolder]) -> None:
        self.folders = folders
        self.voice_list.clear()
        for folder in folders:
            for voice in folder.voices:
                text = f"{voice.removesuffix('.wav')} — {folder.backend}"
                item = QListWidgetItem(text if folder.writable else f"{text} (read-only)")
                item.setData(Qt.ItemDataRole.UserRole, voice if folder.writable else "")
                self.voice_list.addItem(item)
            if not folder.writable:
                note = QListWidgetItem(f"{folder.backend}: read-only. {folder.reason}")
                note.setData(Qt.ItemDataRole.UserRole, "")
                note.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.voice_list.addItem(note)
        self._update_controls()

    # -- recording --------------------------------------------------------------------------------

    def toggle_recording(self) -> None:
        if self.recording:
            self._stop_recording.set()
            return
        self._stop_recording.clear()
        self.recording = True
        self._say("Recording… read the text above, then press Stop (it stops by itself at 20 s).")
        self._update_controls()
        target = self._ctx.data_dir / TAKES_FOLDER / "take.wav"
        # The desktop's own I/O loop: the gateway's loop does gateway work only.
        self._ctx.io.call(
            self._record(target), on_done=self._recorded, on_error=self._record_failed
        )

    async def _record(self, target: Path) -> tuple[Path, float]:
        device = self._audio.duplex(None, None, 80.0)
        blocks: list[np.ndarray] = []
        samples = 0
        levels = Levels()
        await device.start()
        try:
            while samples < MAX_RECORD_S * SAMPLE_RATE and not self._stop_recording.is_set():
                block = (await device.read()).pcm
                blocks.append(block)
                samples += block.shape[0]
                levels.add(block)
                rms, peak = levels.read()
                self._levels.emit(rms, peak)
        finally:
            await device.stop()
        pcm = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(write_wav, target, pcm, SAMPLE_RATE)
        return target, samples / SAMPLE_RATE

    def _show_levels(self, rms: float, peak: float) -> None:
        self.meter.set_levels(rms, peak)
        self.meter_clock.kick()
        self.elapsed.setText(f"{self.meter.reports * 0.08:.1f} s")

    def _recorded(self, result: tuple[Path, float]) -> None:
        path, seconds = result
        self.recording = False
        self.meter.set_levels(0.0, 0.0)
        self.elapsed.setText(f"{seconds:.1f} s")
        short = seconds < MIN_SECONDS
        self._say(
            f"Only {seconds:.1f} s: record at least {MIN_SECONDS:g} s." if short else "Recorded.",
            error=short,
        )
        self.set_take(path, f"Your recording, {seconds:.1f} s.")

    def _record_failed(self, error: BaseException) -> None:
        self.recording = False
        self._failed(error)

    # -- importing, listening, saving -----------------------------------------------------------

    def _choose_file(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self, "Import a voice recording", "", "Audio (*.wav *.flac *.ogg)"
        )
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> None:
        self.set_take(path, f"Imported {path.name}.")
        self._say("")

    def listen(self) -> None:
        if self.take is None:
            return
        take = self.take

        async def play() -> float:
            if self._player is not None:
                self._player.stop()
            self._player = self._audio.player(None)
            return await self._player.play(take)

        self._ctx.bridge.call(
            play(), on_done=lambda s: self._say(f"Played {s:.1f} s."), on_error=self._failed
        )

    def save(self) -> None:
        name = self.name_edit.text().strip()
        if self.take is None:
            self._say("Record or import a voice first.", error=True)
            return
        if not self.consent.isChecked():
            self._say("Tick the consent box to store a voice.", error=True)
            return
        try:
            new_voice_file_name(name)
        except PplexError as exc:
            self._say(exc.message, error=True)
            return
        self._say("Checking and saving…")
        self.save_button.setEnabled(False)
        future = self._ctx.server.add_voice_future(self.take, name, consent=True)
        self._ctx.bridge.watch(future, self._saved, self._failed, what="saving a voice")

    def _saved(self, stored: StoredVoice) -> None:
        self.saved.append(stored)
        self._say(
            f"Saved {stored.file_name.removesuffix('.wav')}: it is in the Talk and Offline "
            "voice lists now."
        )
        self.name_edit.clear()
        self.consent.setChecked(False)
        take, self.take = self.take, None
        if take is not None and take.parent == self._ctx.data_dir / TAKES_FOLDER:
            # The model's copy is stored; a second copy of someone's voice has no reason to stay.
            self._ctx.bridge.call(
                asyncio.to_thread(take.unlink, missing_ok=True), what="deleting the recording"
            )
        self.take_label.setText("Nothing recorded yet.")
        self.refresh()

    def remove_selected(self) -> None:
        item = self.voice_list.currentItem()
        voice = item.data(Qt.ItemDataRole.UserRole) if item is not None else ""
        if not voice:
            return
        future = self._ctx.server.remove_voice_future(str(voice))
        self._ctx.bridge.watch(
            future,
            lambda _removed: self._say(f"Removed {str(voice).removesuffix('.wav')}."),
            self._failed,
            what="removing a voice",
        )
