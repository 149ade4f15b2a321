"""The Offline page: drop recordings, get spoken answers back as files next to them.

Files and folders dropped anywhere on the page (or added with the buttons) are checked here,
sent as jobs to this app's own gateway and followed live; answers are saved as
``<name>.<persona>.<voice>.wav`` plus a ``.json`` transcript, never over an existing file.
The work itself is OfflineQueue's; this module is the view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPersistentModelIndex, Qt, QUrl
from PySide6.QtGui import (
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.audio.file_player import FilePlayer, output_problem
from pplex_desktop.core.voices import voice_entry
from pplex_desktop.desktop.offline_record import Item, ItemState
from pplex_desktop.gateway.events import VoicesChanged
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.offline.offline_form import BatchForm
from pplex_desktop.ui.offline.offline_model import (
    FILE,
    PERSONA,
    PROGRESS,
    RESULT,
    OfflineTableModel,
    ProgressDelegate,
)
from pplex_desktop.ui.offline.offline_queue import OfflineQueue
from pplex_desktop.ui.server.gateway_control import GatewayView
from pplex_desktop.ui.widgets.widgets import label

_log = logging.getLogger(__name__)
PROGRESS_WIDTH = 130
PERSONA_WIDTH = 150
ROW_PADDING = 8  # room around the two lines of a row
TRANSCRIPT_HEIGHT = 84  # four lines; the rows above get the rest
TRANSCRIPT_MIN_HEIGHT = 56
DROP_ZONE_MIN_HEIGHT = 64
DROP_TEXT = "Drop recordings here"
OVERLAY_STYLE = (
    "QLabel#offlineDropOverlay { border: 3px dashed palette(highlight); border-radius: 12px;"
    " background: palette(base); color: palette(highlight); }"
)
# Names of what the page keeps in its record (offline.sqlite3), with the data folder.
TICKED = "ticked"
LAST_FOLDER = "last_folder"
DROP_STYLE = (
    "QFrame#offlineDrop { border: 2px dashed palette(mid); border-radius: 10px; }"
    'QFrame#offlineDrop[dragging="true"] { border-color: palette(highlight);'
    " background: palette(alternate-base); }"
)
FILE_FILTER = "Audio (*.wav *.flac *.ogg);;All files (*)"


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    data = event.mimeData()
    if not data.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in data.urls() if url.isLocalFile()]


class JobsTable(QTableView):
    """The rows, able to bring a row into sight once rows just added are laid out."""

    def __init__(self) -> None:
        super().__init__()
        self._follow: QPersistentModelIndex | None = None

    def follow(self, index: QModelIndex) -> None:
        # Scrolling now stops at the old end: the scroll range grows only with the layout.
        self._follow = QPersistentModelIndex(index)
        self.scrollTo(index)

    def updateGeometries(self) -> None:
        super().updateGeometries()
        if self._follow is not None:
            target, self._follow = self._follow, None
            if target.isValid():
                self.scrollTo(self.model().index(target.row(), target.column()))


class OfflinePanel(QWidget):
    def __init__(self, ctx: DesktopContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self.queue = OfflineQueue(ctx, self)
        self.model = OfflineTableModel(self)
        self.player = FilePlayer()
        self.sound_problem: str | None = "Looking for a speaker…"
        self._sound_asked = False
        self.setAcceptDrops(True)

        # Not scrolled as a whole: the table scrolls, the rest stays in place (a second scroll
        # bar around the table's own made the page slide away under the pointer).
        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.addWidget(label("Offline files", role="title"))
        root.addWidget(
            label(
                "Drop WAV, FLAC or OGG recordings, or whole folders, anywhere on this page. Each "
                "file becomes a job on this app's gateway, waits in the same queue as every "
                "client's, and carries on after a restart. Answers are saved as "
                "<name>.<persona>.<voice>.wav with a .json transcript, never over another file.",
                role="subtitle",
                wrap=True,
            )
        )
        self.form = BatchForm(ctx.settings.current)
        root.addWidget(self.form)

        bar = QHBoxLayout()
        self.add_files_button = QPushButton("&Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.matrix_label = label("", role="subtitle", wrap=True)
        bar.addWidget(self.add_files_button)
        bar.addWidget(self.add_folder_button)
        bar.addSpacing(8)
        bar.addWidget(self.matrix_label, 1)
        root.addLayout(bar)

        self.drop_zone = QFrame()
        self.drop_zone.setObjectName("offlineDrop")
        self.drop_zone.setStyleSheet(DROP_STYLE)
        self.drop_zone.setMinimumHeight(DROP_ZONE_MIN_HEIGHT)
        zone = QVBoxLayout(self.drop_zone)
        hint = label("Drop audio files or folders here", role="state")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        zone.addWidget(hint)
        sub = label("Folders are searched for .wav, .flac and .ogg files.", role="subtitle")
        sub.setAlignment(Qt.AlignmentFlag.AlignCenter)
        zone.addWidget(sub)
        root.addWidget(self.drop_zone, 1)

        self.table = JobsTable()
        self.table.setObjectName("offlineJobs")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        # Names and reasons wrap onto a second line and are cut with an ellipsis after it; the
        # whole text is in the tooltip. Long ones share the width, so no row pushes the table
        # wider than the page.
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(2 * self.table.fontMetrics().lineSpacing() + ROW_PADDING)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for column in (FILE, RESULT):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(PERSONA, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(PERSONA, PERSONA_WIDTH)
        header.setSectionResizeMode(PROGRESS, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(PROGRESS, PROGRESS_WIDTH)
        header.setStretchLastSection(False)
        self.table.doubleClicked.connect(lambda _index: self.play_answer())
        root.addWidget(self.table, 3)

        overall = QHBoxLayout()
        self.overall = QProgressBar()
        self.overall.setObjectName("offlineOverall")
        self.overall.setRange(0, 1000)
        self.overall.setFormat("%p %")
        self.overall.setFixedWidth(220)
        self.overall.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary_label = label("", role="subtitle", wrap=True)
        self.cancel_button = QPushButton("Cancel")
        self.retry_button = QPushButton("Retry")
        self.remove_button = QPushButton("Remove")
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip(
            "Remove the rows that are done, failed, cancelled or refused; answers stay on disk."
        )
        overall.addWidget(self.overall)
        overall.addWidget(self.summary_label, 1)
        for button in (self.cancel_button, self.retry_button, self.remove_button):
            overall.addWidget(button)
        overall.addSpacing(8)
        overall.addWidget(self.clear_button)
        root.addLayout(overall)

        detail = QHBoxLayout()
        # Two by two, and a transcript box that may shrink: the page, which no longer scrolls,
        # must not raise the window's minimum height.
        buttons = QGridLayout()
        buttons.setSpacing(4)
        self.play_input_button = QPushButton("▶ Play input")
        self.play_answer_button = QPushButton("▶ Play answer")
        self.stop_button = QPushButton("■ Stop")
        self.open_folder_button = QPushButton("Open folder")
        for n, button in enumerate(
            (
                self.play_input_button,
                self.play_answer_button,
                self.stop_button,
                self.open_folder_button,
            )
        ):
            buttons.addWidget(button, n // 2, n % 2)
        buttons.setRowStretch(2, 1)
        self.transcript_view = QPlainTextEdit()
        self.transcript_view.setObjectName("offlineTranscript")
        self.transcript_view.setReadOnly(True)
        self.transcript_view.setAcceptDrops(False)  # files dropped here belong to the page
        self.transcript_view.setPlaceholderText("Select a row to see its transcript or error.")
        self.transcript_view.setMinimumHeight(TRANSCRIPT_MIN_HEIGHT)
        self.transcript_view.setMaximumHeight(TRANSCRIPT_HEIGHT)
        right = QVBoxLayout()
        right.setSpacing(4)
        right.addWidget(self.transcript_view)
        self.sound_label = label("", role="subtitle", wrap=True)
        right.addWidget(self.sound_label)
        detail.addLayout(buttons)
        detail.addLayout(right, 1)
        root.addLayout(detail)

        # Over the whole page while files are dragged over it, wherever the rows have got to.
        # It takes no drops itself, so a drag over it is the page's, whatever lies beneath.
        self.drop_overlay = label(DROP_TEXT, role="title")
        self.drop_overlay.setParent(self)
        self.drop_overlay.setObjectName("offlineDropOverlay")
        self.drop_overlay.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_overlay.setStyleSheet(OVERLAY_STYLE)
        self.drop_overlay.hide()
        self.file_dialog: QFileDialog | None = None

        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.cancel_button.clicked.connect(lambda: self.queue.cancel(self.selected_ids()))
        self.retry_button.clicked.connect(lambda: self.queue.retry(self.selected_ids()))
        self.remove_button.clicked.connect(lambda: self.queue.remove(self.selected_ids()))
        self.clear_button.clicked.connect(self.clear_finished)
        self.play_input_button.clicked.connect(self.play_input)
        self.play_answer_button.clicked.connect(self.play_answer)
        self.stop_button.clicked.connect(self.stop_playing)
        self.open_folder_button.clicked.connect(self.open_folder)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.form.changed.connect(self._show_matrix)
        self.form.changed.connect(self._keep_choice)
        self.queue.loaded.connect(self._restore)
        self.queue.added.connect(self._added)
        self.queue.removed.connect(self._removed)
        self.queue.changed.connect(self._changed)
        ctx.gateway.changed.connect(self._gateway_changed)
        ctx.bridge.any_event.connect(self._event)

        self._show_matrix()
        self._show_rows()
        self._selection_changed()
        self._gateway_changed(ctx.gateway.view)

    # -- adding files -----------------------------------------------------------------------------

    def add_paths(self, paths: list[Path]) -> bool:
        """Queue files and folders with the form's current choice; False if nothing was picked."""
        choice = self.form.choice()
        if choice is None:
            self._ctx.status.post("Tick at least one persona and one voice, then add the files.")
            return False
        if not paths:
            return False
        self.queue.add(paths, choice)
        return True

    def last_folder(self) -> Path | None:
        """Where files were last added from (kept with the data folder), if it is still there."""
        kept = self.queue.page_state.get(LAST_FOLDER)
        folder = Path(kept) if isinstance(kept, str) and kept else None
        return folder if folder is not None and folder.is_dir() else None

    def _open_dialog(self, dialog: QFileDialog, chosen: Callable[[list[Path]], None]) -> None:
        """Open a file dialog in the last folder, with open(), never the static getters: their
        nested event loop would hold up quitting."""
        start = self.last_folder()
        if start is not None:
            dialog.setDirectory(str(start))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def accepted() -> None:
            picked = [Path(name) for name in dialog.selectedFiles()]
            if picked:
                chosen(picked)

        def closed(_result: int) -> None:
            if self.file_dialog is dialog:
                self.file_dialog = None

        dialog.accepted.connect(accepted)
        dialog.finished.connect(closed)
        self.file_dialog = dialog
        dialog.open()

    def choose_files(self) -> None:
        dialog = QFileDialog(self, "Add audio files", "", FILE_FILTER)
        dialog.setObjectName("offlineFilesDialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)

        def chosen(paths: list[Path]) -> None:
            self._keep_folder(paths[0].parent)
            self.add_paths(paths)

        self._open_dialog(dialog, chosen)

    def choose_folder(self) -> None:
        dialog = QFileDialog(self, "Add every audio file in a folder")
        dialog.setObjectName("offlineFolderDialog")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)

        def chosen(paths: list[Path]) -> None:
            self._keep_folder(paths[0])
            self.add_paths(paths[:1])

        self._open_dialog(dialog, chosen)

    def _keep_folder(self, folder: Path) -> None:
        self.queue.save_page_state(LAST_FOLDER, str(folder))

    def _keep_choice(self) -> None:
        personas, voices = self.form.ticked()
        self.queue.save_page_state(TICKED, {"personas": personas, "voices": voices})

    def _restore(self) -> None:
        ticked = self.queue.page_state.get(TICKED)
        if isinstance(ticked, dict):
            personas, voices = ticked.get("personas"), ticked.get("voices")
            self.form.restore(
                personas if isinstance(personas, list) else [],
                voices if isinstance(voices, list) else [],
            )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.drop_overlay.setGeometry(self.rect().adjusted(8, 8, -8, -8))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = _local_paths(event)
        if paths:
            event.acceptProposedAction()
            self._set_dragging(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._set_dragging(False)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_dragging(False)
        paths = _local_paths(event)
        if paths and self.add_paths(paths):
            event.acceptProposedAction()
        else:
            event.ignore()

    def _set_dragging(self, on: bool) -> None:
        self.drop_overlay.setGeometry(self.rect().adjusted(8, 8, -8, -8))
        self.drop_overlay.setVisible(on)
        if on:
            self.drop_overlay.raise_()
        self.drop_zone.setProperty("dragging", "true" if on else "false")
        self.drop_zone.style().unpolish(self.drop_zone)
        self.drop_zone.style().polish(self.drop_zone)

    def _show_matrix(self) -> None:
        personas, voices = self.form.jobs_per_file()
        jobs = personas * voices
        if not jobs:
            text = "Tick at least one persona and one voice."
        elif jobs == 1:
            text = "Each file makes one job."
        else:
            text = (
                f"Each file makes {jobs} jobs ({personas} persona{'s' if personas > 1 else ''} × "
                f"{voices} voice{'s' if voices > 1 else ''})."
            )
        if jobs and self.model.rowCount():
            text += " Drop more files or folders anywhere on this page."
        self.matrix_label.setText(text)

    # -- rows -------------------------------------------------------------------------------------

    def _added(self, items: list[Item]) -> None:
        self.model.add(items)
        self._show_rows()
        row = self.model.row_of(items[-1].id) if items else None
        if row is not None:
            self.table.follow(self.model.index(row, FILE))  # new rows go at the end: show them

    def _removed(self, item_ids: list[int]) -> None:
        self.model.remove(item_ids)
        self._show_rows()

    def _changed(self, item: Item) -> None:
        self.model.changed(item)
        self._show_overall()
        self._show_clear()
        if item.id in self.selected_ids():
            self._selection_changed()

    def finished_items(self) -> list[Item]:
        """Rows that will not change by themselves any more: done, failed, cancelled, refused."""
        return [i for i in self.model.items() if i.state.final]

    def _show_clear(self) -> None:
        self.clear_button.setEnabled(bool(self.finished_items()))

    def _show_rows(self) -> None:
        has_rows = self.model.rowCount() > 0
        self.drop_zone.setVisible(not has_rows)
        self.table.setVisible(has_rows)
        self._show_matrix()
        self._show_overall()
        self._selection_changed()

    def _show_overall(self) -> None:
        items = [i for i in self.model.items() if i.state is not ItemState.REFUSED]
        refused = self.model.rowCount() - len(items)
        if not items:
            self.overall.setValue(0)
            self.summary_label.setText(f"{refused} file(s) refused." if refused else "")
            return
        share = sum(1.0 if i.state.final else i.progress for i in items) / len(items)
        self.overall.setValue(round(share * 1000))
        counts: dict[ItemState, int] = {}
        for item in items:
            counts[item.state] = counts.get(item.state, 0) + 1
        done = counts.get(ItemState.DONE, 0)
        parts = [f"{done} of {len(items)} done"]
        running = counts.get(ItemState.RUNNING, 0) + counts.get(ItemState.SAVING, 0)
        waiting = sum(counts.get(s, 0) for s in (ItemState.WAITING, ItemState.UPLOADING))
        for count, what in (
            (running, "running"),
            (counts.get(ItemState.QUEUED, 0), "queued"),
            (waiting, "to upload"),
            (counts.get(ItemState.FAILED, 0) + counts.get(ItemState.GONE, 0), "failed"),
            (counts.get(ItemState.CANCELLED, 0), "cancelled"),
            (refused, "refused"),
        ):
            if count:
                parts.append(f"{count} {what}")
        if (waiting or counts.get(ItemState.QUEUED, 0)) and self._ctx.gateway_url() is None:
            parts.append("waiting for the gateway to run")
        self.summary_label.setText(" · ".join(parts))

    def selected_items(self) -> list[Item]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.model.item(row) for row in rows]

    def selected_ids(self) -> list[int]:
        return [item.id for item in self.selected_items()]

    def select(self, item_id: int) -> None:
        row = self.model.row_of(item_id)
        if row is not None:
            self.table.selectionModel().select(
                self.model.index(row, FILE),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )

    def clear_finished(self) -> None:
        self.queue.remove([i.id for i in self.finished_items()])

    def _selection_changed(self) -> None:
        items = self.selected_items()
        states = {i.state for i in items}
        self.cancel_button.setEnabled(
            any(
                s in (ItemState.WAITING, ItemState.UPLOADING, ItemState.QUEUED, ItemState.RUNNING)
                for s in states
            )
        )
        self.retry_button.setEnabled(any(s.retryable for s in states))
        self.remove_button.setEnabled(bool(items))
        self._show_clear()
        one = items[0] if len(items) == 1 else None
        playable = self.sound_problem is None
        refused = one is not None and one.state is ItemState.REFUSED
        self.play_input_button.setEnabled(one is not None and playable and not refused)
        if self.sound_problem is not None:
            self.play_input_button.setToolTip(self.sound_problem)
        elif refused:
            self.play_input_button.setToolTip("A refused file is not played: see its reason.")
        else:
            self.play_input_button.setToolTip("Play the selected file as it is on disk.")
        self.play_answer_button.setEnabled(
            one is not None and playable and one.audio_path is not None
        )
        self.stop_button.setEnabled(playable)
        self.open_folder_button.setEnabled(one is not None)
        if one is None:
            self.transcript_view.setPlainText("")
        elif one.state is ItemState.DONE:
            text = one.transcript or "(The model said nothing.)"
            self.transcript_view.setPlainText(text)
        else:
            self.transcript_view.setPlainText(one.message or "")

    # -- playing and opening ----------------------------------------------------------------------

    def _sound_checked(self, problem: str | None) -> None:
        self.sound_problem = problem
        self.sound_label.setText(problem or "")
        self.sound_label.setVisible(problem is not None)
        self.play_answer_button.setToolTip(problem or "")
        self._selection_changed()

    def _play(self, path: Path | None) -> None:
        if path is None or self.sound_problem is not None:
            return

        def failed(error: BaseException) -> None:
            self._ctx.errors.report("playing a file", error)

        self._ctx.io.call(
            asyncio.to_thread(self.player.play, path),
            on_done=lambda seconds: self._ctx.status.post(
                f"Playing '{path.name}' ({seconds:.1f} s)."
            ),
            on_error=failed,
            what="playing a file",
        )

    def play_input(self) -> None:
        items = self.selected_items()
        if len(items) == 1 and items[0].state is not ItemState.REFUSED:
            self._play(items[0].path)

    def play_answer(self) -> None:
        items = self.selected_items()
        if len(items) == 1:
            self._play(items[0].audio_path)

    def stop_playing(self) -> None:
        if self.sound_problem is None:
            self._ctx.io.call(asyncio.to_thread(self.player.stop), what="stopping playback")

    def folder_of(self, item: Item) -> Path:
        if item.audio_path is not None:
            return item.audio_path.parent
        return item.out_dir if item.out_dir is not None else item.path.parent

    def open_folder(self) -> None:
        items = self.selected_items()
        if len(items) != 1:
            return
        folder = self.folder_of(items[0])
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self._ctx.status.post(f"No file manager could open {folder}.")

    # -- the gateway and the app ------------------------------------------------------------------

    def _event(self, event: object) -> None:
        if isinstance(event, VoicesChanged):
            self._gateway_changed(self._ctx.gateway.view)  # reads the voice list again

    def _gateway_changed(self, view: GatewayView) -> None:
        self._show_overall()
        if view.state is not GatewayState.RUNNING:
            return

        def got(answer: tuple[tuple[str, ...], str] | None) -> None:
            if answer is None or not answer[0]:
                return
            entries = [voice_entry(v) for v in answer[0]]
            default = voice_entry(answer[1])["id"]
            self.form.set_voices([(e["id"], e["label"]) for e in entries], default)

        # In-process: the voices of the servers that run now, without a request of ours showing
        # up in everybody's activity list at every start.
        self._ctx.bridge.watch(self._ctx.server.voices(), got, what="reading the voices")

    def page_shown(self) -> None:
        self.queue.poll()
        if not self._sound_asked:
            # Asked once the page is seen: opening PortAudio is not free, and many never come.
            self._sound_asked = True
            self._ctx.io.call(
                asyncio.to_thread(output_problem),
                on_done=self._sound_checked,
                what="looking for a speaker",
            )

    def shutdown(self) -> None:
        self.queue.shutdown()
        if self.sound_problem is None:
            self.player.stop()
