"""The tray icon, where the desktop has a tray (offscreen and some desktops have none)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.server.gateway_control import GatewayView


class Tray(QObject):
    show_hide_requested = Signal()
    server_toggled = Signal(bool)  # True: start serving, False: stop
    quit_requested = Signal()

    def __init__(self, icon: QIcon, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.icon: QSystemTrayIcon | None = None
        self.menu: QMenu | None = None
        if not self.available:
            return
        self.menu = QMenu()
        self.show_action = QAction("Show or hide the window", self.menu)
        self.show_action.triggered.connect(self.show_hide_requested.emit)
        self.server_action = QAction("Gateway serving", self.menu)
        self.server_action.setCheckable(True)
        self.server_action.triggered.connect(self.server_toggled.emit)
        self.quit_action = QAction("Quit pplex-desktop", self.menu)
        self.quit_action.triggered.connect(self.quit_requested.emit)
        self.menu.addAction(self.show_action)
        self.menu.addAction(self.server_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon = QSystemTrayIcon(icon, self)
        self.icon.setContextMenu(self.menu)
        self.icon.setToolTip("pplex-desktop")
        self.icon.activated.connect(self._activated)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_hide_requested.emit()

    def show(self) -> None:
        if self.icon is not None:
            self.icon.show()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()

    def show_view(self, view: GatewayView) -> None:
        if self.icon is None:
            return
        running = view.state is GatewayState.RUNNING
        self.server_action.setChecked(running)
        self.server_action.setEnabled(not view.busy)
        where = f" on {view.url}" if view.url else ""
        self.icon.setToolTip(f"pplex-desktop: gateway {view.state.value}{where}")

    def tell(self, title: str, message: str) -> None:
        if self.icon is not None and self.icon.supportsMessages():
            self.icon.showMessage(title, message, QSystemTrayIcon.MessageIcon.Information, 4000)
