"""The main window: a page list on the left, the pages from the registry, menus, status bar."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from pplex_desktop import __version__
from pplex_desktop.desktop.ui_state import ui_state
from pplex_desktop.gateway.server import DEMO_LABEL, GatewayState
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.look import app_icon
from pplex_desktop.ui.pages import PageSpec, call_hook
from pplex_desktop.ui.server.gateway_control import GatewayView
from pplex_desktop.ui.widgets.status_bar import StatusBar

SETTINGS_KEY = "settings"  # the sidebar's last entry, which opens the dialog
SETTINGS_TITLE = "Settings"
GEOMETRY_KEY = "window/geometry"
PAGE_KEY = "window/page"
DEFAULT_SIZE = QSize(1080, 700)
# Decides what closing the window means (ask, minimize, quit); True lets the window close.
ClosePolicy = Callable[[], bool]


class MainWindow(QMainWindow):
    settings_requested = Signal()
    quit_requested = Signal()

    def __init__(self, ctx: DesktopContext, specs: list[PageSpec]) -> None:
        super().__init__()
        self._ctx = ctx
        self.setWindowTitle("pplex-desktop")
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.close_policy: ClosePolicy = lambda: True
        self.pages: dict[str, QWidget] = {}
        self._keys: list[str] = []  # in the order shown
        self._orders: dict[str, int] = {}

        self.navigation = QListWidget()
        self.navigation.setObjectName("navigation")
        self.navigation.setFixedWidth(180)
        self.navigation.setIconSize(QSize(18, 18))
        self.stack = QStackedWidget()
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.navigation)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self._shown: QWidget | None = None  # the page whose page_shown() ran last
        self.navigation.currentRowChanged.connect(self._page_changed)
        for spec in specs:
            self.add_page(spec)
        # Not a page but a way into the settings dialog, always last in the list.
        self.settings_item = QListWidgetItem(SETTINGS_TITLE)
        self.settings_item.setToolTip("Open the settings (also under File).")
        self.settings_item.setData(Qt.ItemDataRole.UserRole, SETTINGS_KEY)
        self.navigation.addItem(self.settings_item)

        self._build_menus()
        self.status_bar = StatusBar()
        self.setStatusBar(self.status_bar)
        self.message_label = self.status_bar.message_label
        self.gateway_label = self.status_bar.gateway_label
        ctx.status.posted.connect(self.status_bar.post)
        ctx.gateway.changed.connect(self._show_view)
        self._show_view(ctx.gateway.view)
        self._restore()

    # -- pages ------------------------------------------------------------------------------------

    def add_page(self, spec: PageSpec) -> QWidget:
        """Build a page from its spec and put it in the list (order kept by spec.order)."""
        if spec.key == SETTINGS_KEY:
            raise ValueError(f"The page key {SETTINGS_KEY!r} is the settings entry's.")
        if spec.key in self.pages:
            raise ValueError(f"The page {spec.key!r} is already in the window.")
        widget = spec.factory(self._ctx)
        widget.setObjectName(f"page_{spec.key}")
        self.pages[spec.key] = widget
        position = sum(1 for k in self._keys if self._orders[k] <= spec.order)
        self._orders[spec.key] = spec.order
        self._keys.insert(position, spec.key)
        self.stack.insertWidget(position, widget)
        item = QListWidgetItem(spec.title)
        item.setToolTip(spec.tooltip or spec.title)
        item.setData(Qt.ItemDataRole.UserRole, spec.key)
        self.navigation.insertItem(position, item)
        if self.navigation.currentRow() < 0:
            self.navigation.setCurrentRow(0)
        self._refresh_page_menu()
        return widget

    def _refresh_page_menu(self) -> None:
        """The View menu lists the pages in sidebar order, Ctrl+1… for the first nine."""
        menu = getattr(self, "view_menu", None)
        if menu is None:
            return  # the menus are built after the first pages
        menu.clear()
        for row, key in enumerate(self._keys):
            title = self.navigation.item(row).text()
            action = QAction(title, self)
            if row < 9:
                action.setShortcut(QKeySequence(f"Ctrl+{row + 1}"))
            action.triggered.connect(lambda _checked=False, k=key: self.show_page(k))
            menu.addAction(action)

    def show_page(self, key: str) -> QWidget:
        self.navigation.setCurrentRow(self._keys.index(key))
        return self.pages[key]

    @property
    def current_key(self) -> str | None:
        row = self.navigation.currentRow()
        return self._keys[row] if 0 <= row < len(self._keys) else None

    def _page_changed(self, row: int) -> None:
        if row >= len(self._keys):  # the settings entry: open the dialog, stay on the page
            self.navigation.blockSignals(True)
            self.navigation.setCurrentRow(self.stack.currentIndex())
            self.navigation.blockSignals(False)
            QTimer.singleShot(0, self.settings_requested.emit)
            return
        self.stack.setCurrentIndex(row)
        current = self.stack.currentWidget()
        if current is self._shown:
            return
        if self._shown is not None:
            call_hook(self._shown, "page_hidden")
        self._shown = current
        if current is not None:
            call_hook(current, "page_shown")

    # -- menus and status ----------------------------------------------------------------------

    def _build_menus(self) -> None:
        app_menu = self.menuBar().addMenu("&File")
        settings = QAction("&Settings…", self)
        # StandardKey.Preferences has no binding on many Linux desktops.
        settings.setShortcut(QKeySequence("Ctrl+,"))
        settings.triggered.connect(self.settings_requested.emit)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested.emit)
        app_menu.addAction(settings)
        app_menu.addSeparator()
        app_menu.addAction(quit_action)

        self.view_menu = self.menuBar().addMenu("&View")
        self._refresh_page_menu()

        server_menu = self.menuBar().addMenu("&Gateway")
        self.start_action = QAction("&Start", self)
        self.start_action.triggered.connect(self._ctx.gateway.start)
        self.stop_action = QAction("S&top", self)
        self.stop_action.triggered.connect(self._stop)
        self.restart_action = QAction("&Restart", self)
        self.restart_action.triggered.connect(self._ctx.gateway.restart)
        for action in (self.start_action, self.stop_action, self.restart_action):
            server_menu.addAction(action)

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About pplex-desktop", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _stop(self) -> None:
        self._ctx.gateway.stop()

    def _about(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.NoIcon,
            "About pplex-desktop",
            f"pplex-desktop {__version__}\n\nA desktop companion and secure gateway for "
            "PersonaPlex and Moshi speech-to-speech servers.",
            parent=self,
        )
        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _show_view(self, view: GatewayView) -> None:
        text = {
            GatewayState.RUNNING: f"Gateway running on {view.url}",
            GatewayState.STARTING: "Gateway starting…",
            GatewayState.STOPPING: "Gateway stopping…",
            GatewayState.STOPPED: "Gateway stopped",
            GatewayState.FAILED: "Gateway not running (start failed)",
        }[view.state]
        if view.demo and view.state is GatewayState.RUNNING:
            text += f" · {DEMO_LABEL}"
        self.gateway_label.show_text(text)
        if view.failure:
            self.gateway_label.setToolTip(view.failure)
        self.start_action.setEnabled(view.state in (GatewayState.STOPPED, GatewayState.FAILED))
        self.stop_action.setEnabled(view.state is GatewayState.RUNNING)
        self.restart_action.setEnabled(view.state in (GatewayState.RUNNING, GatewayState.FAILED))

    # -- state kept between runs ------------------------------------------------------------------

    def _restore(self) -> None:
        state = ui_state(self._ctx.data_dir)
        geometry = state.value(GEOMETRY_KEY)
        if not (
            isinstance(geometry, str)
            and self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        ):
            self.resize(DEFAULT_SIZE)
        page = state.value(PAGE_KEY)
        if isinstance(page, str) and page in self.pages:
            self.show_page(page)

    def save_state(self) -> None:
        state = ui_state(self._ctx.data_dir)
        state.set_value(GEOMETRY_KEY, bytes(self.saveGeometry().toBase64().data()).decode("ascii"))
        if self.current_key is not None:
            state.set_value(PAGE_KEY, self.current_key)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.close_policy():
            self.save_state()
            event.accept()
        else:
            event.ignore()
