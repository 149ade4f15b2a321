"""The Offline page as a new user meets it: what is on screen after drops, what the buttons
allow, what a restart keeps. The real app, gateway, pplex-sim and real files throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QScrollArea, QWidget
from pytestqt.qtbot import QtBot

from pplex_desktop.core.personas import PRESETS
from pplex_desktop.desktop.offline_files import EMPTY_FILE
from pplex_desktop.desktop.offline_record import Item, ItemState
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.main_window import DEFAULT_SIZE
from pplex_desktop.ui.offline.offline_model import FILE, RESULT
from pplex_desktop.ui.offline.offline_panel import DROP_TEXT, OfflinePanel
from tests.gui.conftest import WAIT_MS, Launch, quit_gracefully
from tests.gui.offline_helpers import (
    JOB_WAIT_MS,
    PERSONA,
    all_final,
    drop,
    offline_page,
    ready_page,
    rows,
    spoken_files,
    states,
)

LONG_NAME = "a recording from the kitchen on a rainy tuesday afternoon, take number {n}.wav"


def text_files(folder: Path, count: int, name: str = LONG_NAME) -> list[Path]:
    """Files named like audio that hold text: each is refused at once, one row each."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(count):
        path = folder / name.format(n=n)
        path.write_text("Shopping list: tea, milk, a new bicycle tire.\n")
        made.append(path)
    return made


def row_in_sight(page: OfflinePanel, row: int) -> bool:
    rect = page.table.visualRect(page.model.index(row, FILE))
    return page.table.viewport().rect().contains(rect)


def item_named(page: OfflinePanel, name: str) -> Item:
    return next(i for i in rows(page) if i.path.name == name)


def test_clear_finished_is_on_once_rows_end_and_clears_refused_rows_too(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    assert not page.clear_button.isEnabled()  # nothing to clear
    (speech,) = spoken_files(tmp_path / "in", ("question",))
    (text,) = text_files(tmp_path / "in", 1, "notes.wav")
    drop(page, [speech, text])
    qtbot.waitUntil(lambda: all_final(page, 2), timeout=JOB_WAIT_MS)
    assert page.table.selectionModel().selectedRows() == []  # no row was ever selected
    qtbot.waitUntil(page.clear_button.isEnabled, timeout=WAIT_MS)
    answer = item_named(page, "question.wav").audio_path
    assert answer is not None and answer.is_file()
    page.clear_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=WAIT_MS)
    assert not page.clear_button.isEnabled()
    assert answer.is_file()  # the answer stays on disk
    assert page.drop_zone.isVisibleTo(page)


def test_new_rows_are_scrolled_into_sight(qtbot: QtBot, launch: Launch, tmp_path: Path) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    drop(page, text_files(tmp_path / "first", 30))
    qtbot.waitUntil(lambda: page.model.rowCount() == 30, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: row_in_sight(page, 29), timeout=WAIT_MS)
    assert not row_in_sight(page, 0)  # the table is too short for all: it moved to the end
    page.table.scrollToTop()
    drop(page, text_files(tmp_path / "second", 5))
    qtbot.waitUntil(lambda: page.model.rowCount() == 35, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: row_in_sight(page, 34), timeout=WAIT_MS)


def test_only_the_table_scrolls_and_nothing_is_wider_than_the_page(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    assert shell.window.size() == DEFAULT_SIZE
    page = ready_page(qtbot, shell)
    page.form.tick(page.form.voices, ["NATF2", "NATM1"])  # the longest summary line
    drop(page, [*text_files(tmp_path / "in", 30), *spoken_files(tmp_path / "in", ("one",))])
    qtbot.waitUntil(lambda: page.model.rowCount() == 32, timeout=WAIT_MS)
    assert page.findChildren(QScrollArea) == []  # no scrolling page around the table
    table = page.table
    qtbot.waitUntil(lambda: table.verticalScrollBar().isVisible(), timeout=WAIT_MS)
    assert not table.horizontalScrollBar().isVisible()
    header = table.horizontalHeader()
    assert header.length() <= table.viewport().width()
    hint = page.minimumSizeHint()
    assert hint.width() <= page.width() and hint.height() <= page.height()
    qtbot.waitUntil(lambda: all_final(page, 32), timeout=JOB_WAIT_MS)
    assert not table.horizontalScrollBar().isVisible()
    assert page.minimumSizeHint().width() <= page.width()


def drag_files(paths: list[Path]) -> QMimeData:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return data


def enter(page: OfflinePanel, data: QMimeData) -> QDragEnterEvent:
    event = QDragEnterEvent(
        QPoint(page.width() // 2, page.height() // 2),
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(page, event)
    return event


def test_dragging_files_over_the_page_shows_where_to_drop_them(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    files = text_files(tmp_path / "in", 2)
    overlay = page.drop_overlay
    assert not overlay.isVisible()

    assert enter(page, drag_files(files)).isAccepted()
    assert overlay.isVisible() and overlay.text() == DROP_TEXT == "Drop recordings here"
    assert overlay.geometry().contains(page.drop_zone.geometry())
    QApplication.sendEvent(page, QDragLeaveEvent())
    assert not overlay.isVisible()

    text = QMimeData()
    text.setText("just words, no files")
    assert not enter(page, text).isAccepted()
    assert not overlay.isVisible()

    drop(page, files)  # enter, then drop
    assert not overlay.isVisible()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=WAIT_MS)
    # With rows on the page (the dashed zone gone), a drag still lights it up.
    assert not page.drop_zone.isVisibleTo(page)
    assert enter(page, drag_files(files)).isAccepted()
    assert overlay.isVisible()
    assert overlay.geometry().contains(page.table.geometry())  # over the rows too
    QApplication.sendEvent(page, QDragLeaveEvent())
    assert not overlay.isVisible()


def test_play_input_is_off_on_a_refused_row(qtbot: QtBot, launch: Launch, tmp_path: Path) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    qtbot.waitUntil(lambda: page.sound_problem != "Looking for a speaker…", timeout=WAIT_MS)
    if page.sound_problem is not None:
        # No sound device on this machine: answer as a machine with a speaker would (the only
        # fake here, at the hardware edge), so that the buttons depend on the row alone.
        page._sound_checked(None)
    (speech,) = spoken_files(tmp_path / "in", ("question",))
    (text,) = text_files(tmp_path / "in", 1, "notes.wav")
    drop(page, [speech, text])
    qtbot.waitUntil(lambda: all_final(page, 2), timeout=JOB_WAIT_MS)
    page.select(item_named(page, "notes.wav").id)
    assert not page.play_input_button.isEnabled()
    assert page.play_input_button.toolTip() == "A refused file is not played: see its reason."
    page.select(item_named(page, "question.wav").id)
    assert page.play_input_button.isEnabled()
    assert page.play_answer_button.isEnabled()


def test_refused_rows_have_two_lines_whole_tooltips_and_reasons_without_paths(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    folder = tmp_path / "deep" / "inside" / "the user's own folders"
    (text,) = text_files(folder, 1)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    drop(page, [text, empty])
    qtbot.waitUntil(lambda: all_final(page, 2), timeout=WAIT_MS)
    assert states(page) == [ItemState.REFUSED, ItemState.REFUSED]
    not_audio, nothing = rows(page)
    assert nothing.message == EMPTY_FILE == "The file is empty."
    assert not_audio.message == (
        f"'{text.name}' is not an audio file this app can read; send WAV, FLAC or OGG."
    )
    for item in (not_audio, nothing):
        assert str(tmp_path) not in (item.message or "") and "/" not in (item.message or "")

    table = page.table
    assert table.wordWrap()
    assert table.rowHeight(0) >= 2 * table.fontMetrics().lineSpacing()
    file_cell = page.model.index(0, FILE)
    result_cell = page.model.index(0, RESULT)
    # The cells are narrower than the text, so the whole of it is in their tooltips.
    assert table.columnWidth(FILE) < table.fontMetrics().horizontalAdvance(text.name)
    assert file_cell.data(Qt.ItemDataRole.ToolTipRole) == str(text)
    assert result_cell.data() == not_audio.message
    assert result_cell.data(Qt.ItemDataRole.ToolTipRole) == (
        f"{not_audio.message} Fix the file and drop it again."
    )


@pytest.mark.parametrize("ending", [".", ".."])
def test_a_reason_ending_in_a_double_period_is_shown_with_one(ending: str) -> None:
    from pplex_desktop.ui.offline.offline_model import OfflineTableModel

    item = Item(
        id=1,
        batch=1,
        path=Path("in.wav"),
        out_dir=None,
        persona=PERSONA,
        voice="NATF2",
        seed=None,
        silence_s=1.0,
        state=ItemState.FAILED,
        created_at=0.0,
        message=f"'in.wav' is not an audio file: Format not recognised{ending}",
    )
    model = OfflineTableModel()
    model.add([item])
    shown = "'in.wav' is not an audio file: Format not recognised."
    assert model.index(0, RESULT).data() == shown
    assert model.index(0, RESULT).data(Qt.ItemDataRole.ToolTipRole) == shown


def test_a_file_the_gateway_refuses_shows_its_sentence_in_the_row(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    shell.gateway.stop()
    qtbot.waitUntil(lambda: shell.gateway.view.state is GatewayState.STOPPED, timeout=WAIT_MS)
    (speech,) = spoken_files(tmp_path / "in", ("changed",))
    drop(page, [speech])
    qtbot.waitUntil(lambda: states(page) == [ItemState.WAITING], timeout=WAIT_MS)
    # Checked here while it was audio; by the time it is sent it is not any more.
    speech.write_text("Overwritten with text after the drop.\n")
    shell.gateway.start()
    qtbot.waitUntil(lambda: all_final(page, 1), timeout=JOB_WAIT_MS)
    (item,) = rows(page)
    assert item.state is ItemState.FAILED
    # The gateway's own sentence (it words it), shown as a sentence: one period at the end.
    shown = page.model.index(0, RESULT).data()
    assert shown and shown.rstrip(".") == (item.message or "").rstrip(".")
    assert shown.endswith(".") and not shown.endswith("..")


def forget_the_last_dialog_folder(elsewhere: Path) -> None:
    """Qt's own file dialogs start where the last one in this process ended; a restarted app
    would not know it. Point that memory elsewhere, so only the page's record can help."""
    elsewhere.mkdir(parents=True, exist_ok=True)
    stray = QFileDialog(None, "Elsewhere", str(elsewhere))
    stray.setFileMode(QFileDialog.FileMode.Directory)
    stray.selectFile(str(elsewhere))
    stray.accept()
    stray.deleteLater()
    fresh = QFileDialog()
    try:
        assert Path(fresh.directory().absolutePath()) != elsewhere.parent / "recordings"
    finally:
        fresh.deleteLater()


def form_ticks(page: OfflinePanel) -> tuple[list[str], list[str]]:
    personas, voices = page.form.ticked()
    return sorted(personas), sorted(voices)


def test_ticks_and_the_last_folder_come_back_after_a_restart_on_the_same_data_folder(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    preset = PRESETS[1].text
    page.form.tick(page.form.personas, [PERSONA, preset])
    page.form.tick(page.form.voices, ["NATF2", "NATM1"])
    wanted = (sorted([PERSONA, preset]), ["NATF2", "NATM1"])
    assert form_ticks(page) == wanted

    folder = tmp_path / "recordings"
    (speech,) = spoken_files(folder, ("hello",))
    page.add_files_button.click()
    dialog = page.file_dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    dialog.setDirectory(str(folder))
    dialog.selectFile(str(speech))
    dialog.accept()
    qtbot.waitUntil(lambda: page.model.rowCount() == 4, timeout=WAIT_MS)  # 2 × 2
    assert page.file_dialog is None
    quit_gracefully(qtbot, shell)

    forget_the_last_dialog_folder(tmp_path / "elsewhere")  # as a new process would
    again = launch()
    page = offline_page(again)
    qtbot.waitUntil(lambda: page.queue.ready, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: form_ticks(page) == wanted, timeout=WAIT_MS)
    assert page.last_folder() == folder
    page.add_folder_button.click()
    dialog = page.file_dialog
    assert isinstance(dialog, QFileDialog)
    assert Path(dialog.directory().absolutePath()) == folder
    dialog.reject()
    page.add_files_button.click()
    dialog = page.file_dialog
    assert isinstance(dialog, QFileDialog)
    assert Path(dialog.directory().absolutePath()) == folder
    dialog.reject()
    quit_gracefully(qtbot, again)

    # Another data folder has its own page: nothing of the first one's choices.
    other = launch(data_dir=tmp_path / "other data")
    page = offline_page(other)
    qtbot.waitUntil(lambda: page.queue.ready, timeout=WAIT_MS)
    assert page.last_folder() is None
    personas, voices = form_ticks(page)
    assert PERSONA not in personas and voices == ["NATF2"]


def drop_target(page: OfflinePanel, x: int, y: int) -> QWidget | None:
    """The widget a drag at (x, y) goes to, found as Qt finds it: the widget under the point,
    then up through its parents to the first that takes drops."""
    widget: QWidget | None = page.childAt(x, y) or page
    while widget is not None and not widget.acceptDrops():
        widget = widget.parentWidget()
    return widget


def test_files_dragged_anywhere_on_the_page_are_the_pages_to_take(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    shell = launch()
    page = ready_page(qtbot, shell)
    drop(page, text_files(tmp_path / "in", 2))  # with rows, the table and transcript show
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=WAIT_MS)
    step = 12
    points = [(x, y) for x in range(2, page.width(), step) for y in range(2, page.height(), step)]
    assert {drop_target(page, x, y) for x, y in points} == {page}
    assert enter(page, drag_files(text_files(tmp_path / "more", 1))).isAccepted()
    assert {drop_target(page, x, y) for x, y in points} == {page}  # the highlight takes none
    QApplication.sendEvent(page, QDragLeaveEvent())
