"""Recent requests and sessions, newest first, from the gateway's RequestServed events."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, Qt
from PySide6.QtGui import QColor

from pplex_desktop.core.redact import redact_url
from pplex_desktop.gateway.events import RequestServed
from pplex_desktop.ui.widgets.flat_table import AnyIndex, FlatTableModel

COLUMNS = ("Time", "Key", "Client", "Route", "Status", "Duration")
MAX_ROWS = 2_000


def _duration(ms: float) -> str:
    if ms < 1_000:
        return f"{ms:.0f} ms"
    seconds = ms / 1_000
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


class ActivityModel(FlatTableModel):
    columns = COLUMNS

    def __init__(self, parent: QObject | None = None, max_rows: int = MAX_ROWS) -> None:
        super().__init__(parent)
        self._rows: deque[RequestServed] = deque()
        self._max = max_rows

    def add(self, event: RequestServed) -> None:
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._rows.appendleft(event)
        self.endInsertRows()
        if len(self._rows) > self._max:
            last = len(self._rows) - 1
            self.beginRemoveRows(QModelIndex(), last, last)
            self._rows.pop()
            self.endRemoveRows()

    def set_events(self, events: Iterable[RequestServed]) -> None:
        """Oldest first in, newest first shown (the gateway's history order)."""
        self.beginResetModel()
        self._rows = deque(reversed(list(events)[-self._max :]))
        self.endResetModel()

    def request_at(self, row: int) -> RequestServed:
        return self._rows[row]

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        event = self._rows[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._text(event, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == 4:
            if event.status >= 500:
                return QColor("#d64545")
            if event.status >= 400:
                return QColor("#c88a1a")
        return None

    @staticmethod
    def _text(event: RequestServed, column: int) -> str:
        if column == 0:
            return time.strftime("%H:%M:%S", time.localtime(event.at))
        if column == 1:
            return event.key_name or "—"
        if column == 2:
            return event.client
        if column == 3:
            # The gateway redacts already; redacting again costs little and guards the screen.
            session = " (conversation)" if event.kind == "websocket" else ""
            return f"{event.method} {redact_url(event.path)}{session}"
        if column == 4:
            return str(event.status)
        return _duration(event.duration_ms)
