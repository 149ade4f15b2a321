"""The Talk page's list of recorded conversations: newest first, play, open the folder, delete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.audio.recorder import RecordingInfo
from pplex_desktop.ui.widgets.widgets import label, selectable

INFO_ROLE = Qt.ItemDataRole.UserRole
PREVIEW_CHARS = 60
UrlOpener = Callable[[QUrl], object]


def describe(info: RecordingInfo) -> str:
    """One line per recording: when (local time), voice, length and the start of its text."""
    try:
        started = datetime.fromisoformat(info.started_at.replace("Z", "+00:00")).astimezone()
        when = started.strftime("%Y-%m-%d %H:%M")
    except ValueError:
        when = info.started_at
    voice = info.voice.rsplit(".", 1)[0]
    minutes, seconds = divmod(round(info.duration_s), 60)
    text = " ".join(info.text.split())
    preview = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    line = f"{when} · {voice} · {minutes}:{seconds:02d}"
    return f"{line} · “{preview}”" if preview else line


class RecordingsBox(QGroupBox):
    play_requested = Signal(object)  # RecordingInfo
    stop_requested = Signal()
    delete_confirmed = Signal(object)  # RecordingInfo

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__("Recordings", parent)
        self.folder = folder
        # Swappable so tests can see what would open without a desktop to open it.
        self.open_url: UrlOpener = QDesktopServices.openUrl
        self.confirm_box: QMessageBox | None = None
        self.playing: RecordingInfo | None = None
        self._can_play = True  # False while a conversation holds the sound devices
        self.loaded = 0  # how many times the list was filled (tests wait on it)

        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setObjectName("recordingsList")
        self.list.setAlternatingRowColors(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setMinimumHeight(72)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.itemDoubleClicked.connect(lambda _item: self._play_clicked())
        layout.addWidget(self.list, 1)
        self.empty_label = label(
            "No recordings yet. Tick “Record this conversation” before you connect.",
            role="subtitle",
            wrap=True,
        )
        layout.addWidget(self.empty_label)
        row = QHBoxLayout()
        self.play_button = QPushButton("Play")
        self.play_button.setObjectName("playRecording")
        self.folder_button = QPushButton("Open folder")
        self.delete_button = QPushButton("Delete…")
        for button in (self.play_button, self.folder_button, self.delete_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        # Shown when no file manager opened the folder: where it is, and a way to copy that.
        note_row = QHBoxLayout()
        self.folder_note = selectable(label(role="subtitle", wrap=True))
        self.folder_note.setObjectName("folderNote")
        self.copy_button = QPushButton("Copy path")
        note_row.addWidget(self.folder_note, 1)
        note_row.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(note_row)
        self.folder_note.hide()
        self.copy_button.hide()
        self.copy_button.clicked.connect(self.copy_path)
        self.play_button.clicked.connect(self._play_clicked)
        self.folder_button.clicked.connect(self.open_folder)
        self.delete_button.clicked.connect(self.delete_selected)
        self.set_recordings([])

    def set_recordings(self, infos: list[RecordingInfo]) -> None:
        keep = self.selected()
        self.list.clear()
        for info in infos:
            item = QListWidgetItem(describe(info))
            item.setData(INFO_ROLE, info)
            item.setToolTip(
                f"{info.wav_path.name}\nPersona: {info.persona}\n\n{info.text or '(no words)'}"
            )
            self.list.addItem(item)
            if keep is not None and info.stem == keep.stem:
                item.setSelected(True)
        if self.list.count() and not self.list.selectedItems():
            self.list.setCurrentRow(0)
        self.empty_label.setVisible(not infos)
        self.list.setVisible(bool(infos))
        self.loaded += 1
        self._update_buttons()

    def recordings(self) -> list[RecordingInfo]:
        return [self.list.item(i).data(INFO_ROLE) for i in range(self.list.count())]

    def selected(self) -> RecordingInfo | None:
        items = self.list.selectedItems()
        info = items[0].data(INFO_ROLE) if items else None
        return info if isinstance(info, RecordingInfo) else None

    def select(self, stem: str) -> bool:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(INFO_ROLE).stem == stem:
                self.list.setCurrentItem(item)
                return True
        return False

    def set_playing(self, info: RecordingInfo | None) -> None:
        self.playing = info
        self._update_buttons()

    def set_can_play(self, can: bool) -> None:
        self._can_play = can
        self._update_buttons()

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        if self.playing is not None:
            self.play_button.setText("Stop")
            self.play_button.setEnabled(True)
        else:
            self.play_button.setText("Play")
            self.play_button.setEnabled(chosen and self._can_play)
        self.delete_button.setEnabled(chosen)

    def _play_clicked(self) -> None:
        if self.playing is not None:
            self.stop_requested.emit()
            return
        info = self.selected()
        if info is not None and self.play_button.isEnabled():
            self.play_requested.emit(info)

    def open_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            self._show_note(f"The folder {self.folder} could not be created: {exc.strerror}.")
            return
        # openUrl says False when no program on this desktop could open a folder.
        if self.open_url(QUrl.fromLocalFile(str(self.folder))) is False:
            self._show_note(
                f"No file manager opened the folder. The recordings are in {self.folder}"
            )
        else:
            self.folder_note.hide()
            self.copy_button.hide()

    def _show_note(self, text: str) -> None:
        self.folder_note.setText(text)
        self.folder_note.show()
        self.copy_button.setText("Copy path")
        self.copy_button.show()

    def copy_path(self) -> None:
        QGuiApplication.clipboard().setText(str(self.folder))
        self.copy_button.setText("Copied")

    def delete_selected(self) -> None:
        info = self.selected()
        if info is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete recording",
            f"Delete the recording of {describe(info).split(' · ')[0]} ({info.wav_path.name} and "
            "its transcript)? This cannot be undone.",
            parent=self,
        )
        confirm = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            self.confirm_box = None
            if box.clickedButton() is confirm:
                self.delete_confirmed.emit(info)

        box.finished.connect(finished)
        self.confirm_box = box
        box.open()  # not exec(): the conversation's events keep flowing meanwhile
