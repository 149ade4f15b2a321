"""The Offline page's rows as a table model, and the progress bar drawn in its Progress column."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from pplex_desktop.desktop.offline_files import persona_title
from pplex_desktop.desktop.offline_record import Item, ItemState
from pplex_desktop.ui.widgets.flat_table import ROOT, AnyIndex, FlatTableModel

COLUMNS = ("File", "Persona", "Voice", "State", "Progress", "Duration", "Time", "Result")
FILE, PERSONA, VOICE, STATE, PROGRESS, DURATION, TIME, RESULT = range(len(COLUMNS))
ITEM_ROLE = Qt.ItemDataRole.UserRole + 1  # the Item of a row
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 2  # 0..1, or None where a bar means nothing
ERROR_COLOR = QColor("#d64545")
DONE_COLOR = QColor("#2e9d57")
MUTED_COLOR = QColor("#8d9199")  # readable on the light and the dark palette
_PERSONA_CHARS = 40
MINUTE_S = 60


def seconds_text(value: float | None) -> str:
    if value is None:
        return "–"
    if value < MINUTE_S:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def state_text(item: Item) -> str:
    state = item.state
    if state is ItemState.WAITING:
        return "waiting to upload"
    if state is ItemState.RUNNING and item.stage and item.stage != "running":
        return f"running: {item.stage}"
    return state.value


def progress_of(item: Item) -> float | None:
    if item.state is ItemState.DONE:
        return 1.0
    if item.state in (ItemState.RUNNING, ItemState.SAVING, ItemState.QUEUED):
        return item.progress
    if item.state in (ItemState.WAITING, ItemState.UPLOADING):
        return 0.0
    return None


def clean_message(message: str | None) -> str:
    """A sentence as shown: a reason that ends in "..", as raw library text can, ends in one."""
    text = (message or "").strip()
    while text.endswith(".."):
        text = text[:-1]
    return text


def short_persona(persona: str) -> str:
    title = persona_title(persona)
    return title if len(title) <= _PERSONA_CHARS else title[: _PERSONA_CHARS - 1] + "…"


class OfflineTableModel(FlatTableModel):
    columns = COLUMNS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Item] = []
        self._row_of: dict[int, int] = {}

    # -- changing -------------------------------------------------------------------------------

    def _reindex(self) -> None:
        self._row_of = {item.id: row for row, item in enumerate(self._rows)}

    def add(self, items: Iterable[Item]) -> None:
        new = [i for i in items if i.id not in self._row_of]
        if not new:
            return
        first = len(self._rows)
        self.beginInsertRows(ROOT, first, first + len(new) - 1)
        self._rows.extend(new)
        self._reindex()
        self.endInsertRows()

    def remove(self, item_ids: Iterable[int]) -> None:
        for row in sorted((self._row_of[i] for i in item_ids if i in self._row_of), reverse=True):
            self.beginRemoveRows(ROOT, row, row)
            del self._rows[row]
            self.endRemoveRows()
        self._reindex()

    def changed(self, item: Item) -> None:
        """Repaint a row whose Item was changed in place."""
        row = self._row_of.get(item.id)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    # -- reading --------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        return list(self._rows)

    def item(self, row: int) -> Item:
        return self._rows[row]

    def row_of(self, item_id: int) -> int | None:
        return self._row_of.get(item_id)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        item = self._rows[index.row()]
        column = index.column()
        if role == ITEM_ROLE:
            return item
        if role == PROGRESS_ROLE:
            return progress_of(item) if column == PROGRESS else None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item, column)
        if role == Qt.ItemDataRole.ForegroundRole and column in (STATE, RESULT):
            if item.state in (ItemState.FAILED, ItemState.REFUSED, ItemState.GONE):
                return ERROR_COLOR
            if item.state is ItemState.DONE and column == STATE:
                return DONE_COLOR
            if item.state is ItemState.CANCELLED:
                return MUTED_COLOR
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (DURATION, TIME):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, item: Item, column: int) -> str:
        if column == FILE:
            return item.path.name
        if column in (PERSONA, VOICE) and item.state is ItemState.REFUSED:
            return "–"  # never sent, so with nothing
        if column == PERSONA:
            return short_persona(item.persona)
        if column == VOICE:
            return item.voice
        if column == STATE:
            return state_text(item)
        if column == PROGRESS:
            value = progress_of(item)
            return "" if value is None else f"{value * 100:.0f} %"
        if column == DURATION:
            return seconds_text(item.duration_s)
        if column == TIME:
            if item.started_at is None or item.finished_at is None:
                return "–"
            return seconds_text(max(0.0, item.finished_at - item.started_at))
        if item.state is ItemState.DONE and item.audio_path is not None:
            return item.audio_path.name
        return clean_message(item.message)

    def _tooltip(self, item: Item, column: int) -> str | None:
        if column == FILE:
            return str(item.path)
        if column == PERSONA:
            return item.persona
        if column == TIME:
            return "From the moment a model server took the job to its answer."
        if column == RESULT:
            if item.state is ItemState.DONE and item.audio_path is not None:
                return str(item.audio_path)
            if item.state is ItemState.REFUSED:
                return f"{clean_message(item.message)} Fix the file and drop it again."
            return clean_message(item.message) or None
        return None


class ProgressDelegate(QStyledItemDelegate):
    """A progress bar in the cell, drawn with the app's style (no widget per row)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        value = index.data(PROGRESS_ROLE)
        if not isinstance(value, float):
            super().paint(painter, option, index)
            return
        # The selection and alternating background first, then the bar inset a little.
        background = QStyleOptionViewItem(option)
        self.initStyleOption(background, index)
        background.text = ""
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, background, painter, widget)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(4, 3, -4, -3)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = round(max(0.0, min(1.0, value)) * 1000)
        bar.text = f"{value * 100:.0f} %"
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)
