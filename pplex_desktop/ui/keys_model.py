"""The API keys as a table model (never the keys themselves: only names, prefixes, limits)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QObject,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor

from pplex_desktop.core.keystore import KIND_OWNER, KIND_PAIRED, ApiKey, KeyState
from pplex_desktop.ui.flat_table import AnyIndex, FlatTableModel

COLUMNS = (
    "Name",
    "Key",
    "Requests/min",
    "Sessions",
    "Created",
    "Last used",
    "Usage",
    "State",
)
KEY_ROLE = Qt.ItemDataRole.UserRole + 1  # the ApiKey record of a row
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
OWNER_NAME_SUFFIX = " — this app"
INACTIVE_COLOR = QColor("#8d9199")  # readable on the light and the dark palette


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def _usage(record: ApiKey) -> str:
    minutes = (record.audio_in_s + record.audio_out_s) / 60.0
    requests = f"{record.requests} request{'s' if record.requests != 1 else ''}"
    return f"{requests}, {minutes:.1f} audio min" if minutes else requests


class KeysTableModel(FlatTableModel):
    columns = COLUMNS

    def __init__(self, now: Callable[[], float] = time.time, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[ApiKey] = []
        self._now = now

    def set_keys(self, keys: list[ApiKey]) -> None:
        self.beginResetModel()
        self._rows = list(keys)
        self.endResetModel()

    def record(self, row: int) -> ApiKey:
        return self._rows[row]

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        record = self._rows[index.row()]
        column = index.column()
        if role == KEY_ROLE:
            return record
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(record, column)
        if role == SORT_ROLE:
            return self._sort_value(record, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if record.kind == KIND_OWNER:
                return "The app's own key for talking to its gateway; replaced at every start."
            if column == 1:
                return "Only the start of the key is kept; the whole key was shown once."
        if role == Qt.ItemDataRole.ForegroundRole and record.state(self._now()) is not (
            KeyState.ACTIVE
        ):
            return INACTIVE_COLOR  # a key that no longer works reads as such at a glance
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, record: ApiKey, column: int) -> str:
        if column == 0:
            suffix = OWNER_NAME_SUFFIX if record.kind == KIND_OWNER else ""
            paired = " (paired device)" if record.kind == KIND_PAIRED else ""
            return record.name + paired + suffix
        if column == 1:
            return record.prefix + "…"
        if column == 2:
            return str(record.rpm)
        if column == 3:
            return str(record.max_sessions)
        if column == 4:
            return _when(record.created_at)
        if column == 5:
            return _when(record.last_used_at)
        if column == 6:
            return _usage(record)
        state = record.state(self._now())
        if state is KeyState.ACTIVE and record.expires_at is not None:
            return f"active until {_when(record.expires_at)}"
        return state.value

    def _sort_value(self, record: ApiKey, column: int) -> Any:
        values: tuple[Any, ...] = (
            record.name.lower(),
            record.prefix,
            record.rpm,
            record.max_sessions,
            record.created_at,
            record.last_used_at or 0.0,
            record.requests,
            record.state(self._now()).value,
        )
        return values[column]


class KeysFilter(QSortFilterProxyModel):
    """Text filter over every column; the app's own key hidden unless asked for."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.show_owner = False
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        self.setSortRole(SORT_ROLE)

    def set_show_owner(self, show: bool) -> None:
        self.beginFilterChange()
        self.show_owner = show
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        model = self.sourceModel()
        record = model.index(source_row, 0, source_parent).data(KEY_ROLE)
        if isinstance(record, ApiKey) and record.kind == KIND_OWNER and not self.show_owner:
            return False
        return super().filterAcceptsRow(source_row, source_parent)
