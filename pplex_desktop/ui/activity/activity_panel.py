"""The activity page: recent requests and conversations (never a key), and the app's log."""

from __future__ import annotations

import time

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.desktop.ui_state import ui_state
from pplex_desktop.gateway.events import RequestServed
from pplex_desktop.ui.activity.activity_model import ActivityModel
from pplex_desktop.ui.activity.log_handler import LEVELS, LogLine, app_level, set_app_level
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.widgets.widgets import label

LOG_LINES = 2_000
LEVEL_KEY = "activity/log_level"
DEFAULT_LEVEL = "INFO"


class ActivityPanel(QWidget):
    def __init__(self, ctx: DesktopContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self.model = ActivityModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.history_loaded = False
        self._early: list[RequestServed] = []

        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.addWidget(label("Activity", role="title"))
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_requests())
        splitter.addWidget(self._build_log())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        root.addWidget(splitter, 1)

        ctx.bridge.request_served.connect(self._on_request)
        for line in ctx.log_handler.carrier.backlog:
            self._on_log(line)
        ctx.log_handler.carrier.lines.connect(self._on_lines)
        ctx.bridge.watch(
            ctx.server.recent_requests(), self._history, what="reading the recent requests"
        )

    def _build_requests(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(label("Requests and conversations, newest first", role="subtitle"), 1)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by key, client, route or status")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        bar.addWidget(self.filter_edit, 1)
        layout.addLayout(bar)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table)
        return box

    def _build_log(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(label("Log", role="subtitle"), 1)
        bar.addWidget(label("Level"))
        self.level_combo = QComboBox()
        self.level_combo.addItems(list(LEVELS))
        # The level chosen last time, else INFO: the view is for people, not only for faults.
        saved = str(ui_state(self._ctx.data_dir).value(LEVEL_KEY, DEFAULT_LEVEL))
        set_app_level(saved if saved in LEVELS else DEFAULT_LEVEL)
        self.level_combo.setCurrentText(app_level())
        self.level_combo.currentTextChanged.connect(self._level_changed)
        bar.addWidget(self.level_combo)
        layout.addLayout(bar)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("logView")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        layout.addWidget(self.log_view)
        return box

    def _history(self, history: list[RequestServed]) -> None:
        seen = set(history)
        self.model.set_events(history)
        for event in self._early:
            if event not in seen:
                self.model.add(event)
        self._early.clear()
        self.history_loaded = True

    def _on_request(self, event: RequestServed) -> None:
        if self.history_loaded:
            self.model.add(event)
        else:
            self._early.append(event)

    def _on_log(self, line: LogLine) -> None:
        self._on_lines([line])

    def _on_lines(self, lines: list[LogLine]) -> None:
        text = "\n".join(
            f"{time.strftime('%H:%M:%S', time.localtime(line.created))} {line.level:<7} {line.text}"
            for line in lines
        )
        self.log_view.appendPlainText(text)

    def _level_changed(self, name: str) -> None:
        set_app_level(name)
        ui_state(self._ctx.data_dir).set_value(LEVEL_KEY, name)
        self._ctx.status.post(f"The log now shows {name} messages and above.")
