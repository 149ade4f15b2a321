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
from PySide6.QtGui import QColor, QFont, QFontDatabase

from pplex_desktop.core.keystore import KIND_OWNER, KIND_PAIRED, ApiKey, KeyState
from pplex_desktop.ui.widgets.flat_table import AnyIndex, FlatTableModel

# Short titles, explained in their tooltips: every column fits a window of the default size.
COLUMNS = ("Name", "Key", "Limits", "Created", "Last used", "Usage", "State")
NAME, PREFIX, LIMITS, CREATED, LAST_USED, USAGE, STATE = range(len(COLUMNS))
HEADER_TIPS = (
    "The name given to the key; “manages voices”: it may store and remove custom voices.",
    "The start of the key: the whole key was shown once, when it was made.",
    "Requests per minute and conversations at once the key may have.",
    "When the key was made.",
    "When the key was last used.",
    "Requests made with the key, and minutes of audio in and out.",
    "Whether the key works: active (until when, if it expires), expired or revoked.",
)
KEY_ROLE = Qt.ItemDataRole.UserRole + 1  # the ApiKey record of a row
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
OWNER_NAME_SUFFIX = " (this app)"
# Beside the name rather than in a column of its own: the columns fit the default window.
VOICES_SUFFIX = " (manages voices)"
INACTIVE_COLOR = QColor("#8d9199")  # readable on the light and the dark palette


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def _day(stamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(stamp))


def _recent(stamp: float | None, now: float) -> str:
    """Today's uses by the time, older ones by the day: the whole time is in the tooltip."""
    if stamp is None:
        return "never"
    if _day(stamp) == _day(now):
        return time.strftime("today %H:%M", time.localtime(stamp))
    return _day(stamp)


def _usage(record: ApiKey) -> str:
    minutes = (record.audio_in_s + record.audio_out_s) / 60.0
    requests = f"{record.requests} request{'s' if record.requests != 1 else ''}"
    return f"{requests}, {minutes:.1f} min" if minutes else requests


def _usage_tip(record: ApiKey) -> str:
    return (
        f"{record.requests} request(s); {record.audio_in_s / 60:.1f} min of audio in and "
        f"{record.audio_out_s / 60:.1f} min out."
    )


class KeysTableModel(FlatTableModel):
    columns = COLUMNS

    def __init__(self, now: Callable[[], float] = time.time, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[ApiKey] = []
        self._now = now
        self._key_font: QFont | None = None

    def _prefix_font(self) -> QFont:
        # Monospace like the whole key in its dialog; it also gives every prefix the same width,
        # so a prefix of wide letters no longer takes the room the name needs at the default size.
        if self._key_font is None:
            self._key_font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        return self._key_font

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
            return self._tooltip(record, column)
        if role == Qt.ItemDataRole.FontRole and column == PREFIX:
            return self._prefix_font()
        if role == Qt.ItemDataRole.ForegroundRole and record.state(self._now()) is not (
            KeyState.ACTIVE
        ):
            return INACTIVE_COLOR  # a key that no longer works reads as such at a glance
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        return super().headerData(section, orientation, role)

    def _tooltip(self, record: ApiKey, column: int) -> str:
        """The whole of a cell, should a narrow window cut it, and what it means."""
        if column == NAME and record.kind == KIND_OWNER:
            return (
                f"{self._text(record, NAME)}: the app's own key for talking to its gateway; "
                "replaced at every start."
            )
        if column == NAME and record.can_manage_voices:
            return (
                f"{record.name}: this key has the voices permission, to store and remove "
                "custom voices."
            )
        if column == PREFIX:
            return f"{self._text(record, PREFIX)} Only the start of the key is kept."
        if column == LIMITS:
            return (
                f"Up to {record.rpm} requests per minute and {record.max_sessions} "
                "conversation(s) at once."
            )
        if column == CREATED:
            return f"Made {_when(record.created_at)}."
        if column == LAST_USED:
            return f"Last used {_when(record.last_used_at)}."
        if column == USAGE:
            return _usage_tip(record)
        return self._text(record, column)

    def _text(self, record: ApiKey, column: int) -> str:
        if column == NAME:
            # The owner key's own name may already say whose it is.
            owner = record.kind == KIND_OWNER and OWNER_NAME_SUFFIX not in record.name
            paired = " (paired device)" if record.kind == KIND_PAIRED else ""
            voices = VOICES_SUFFIX if record.can_manage_voices else ""
            return record.name + paired + (OWNER_NAME_SUFFIX if owner else "") + voices
        if column == PREFIX:
            return record.prefix + "…"
        if column == LIMITS:
            return f"{record.rpm}/min, {record.max_sessions} at once"
        if column == CREATED:
            return _day(record.created_at)
        if column == LAST_USED:
            return _recent(record.last_used_at, self._now())
        if column == USAGE:
            return _usage(record)
        state = record.state(self._now())
        if state is KeyState.ACTIVE and record.expires_at is not None:
            return f"active until {_when(record.expires_at)}"
        return state.value

    def _sort_value(self, record: ApiKey, column: int) -> Any:
        values: tuple[Any, ...] = (
            record.name.lower(),
            record.prefix,
            (record.rpm, record.max_sessions),
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
