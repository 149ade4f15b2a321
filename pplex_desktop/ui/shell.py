"""The running desktop app: services wired to the window, the tray, first launch and quitting.

app.py opens the services (settings, key store, gateway) and hands them here; tests do the
same, so they drive exactly the app that people run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QCheckBox, QDialog, QMessageBox

from pplex_desktop.core.folder_lock import FolderLock
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.desktop import ui_state
from pplex_desktop.desktop.live_audio import AudioSystem
from pplex_desktop.desktop.settings_store import SettingsStore
from pplex_desktop.gateway.server import GatewayServer, GatewayState
from pplex_desktop.ui.activity import log_handler
from pplex_desktop.ui.activity.activity_panel import ActivityPanel
from pplex_desktop.ui.bridge import GatewayBridge, IoBridge
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.errors import ErrorReporter
from pplex_desktop.ui.keys.keys_panel import KeysPanel
from pplex_desktop.ui.look import app_icon
from pplex_desktop.ui.main_window import MainWindow
from pplex_desktop.ui.offline.offline_panel import OfflinePanel
from pplex_desktop.ui.pages import PageRegistry, PageSpec, call_hook
from pplex_desktop.ui.server.counters import LiveCounters
from pplex_desktop.ui.server.gateway_control import GatewayController, GatewayView
from pplex_desktop.ui.server.server_panel import ServerPanel
from pplex_desktop.ui.settings.settings_dialog import SettingsDialog
from pplex_desktop.ui.settings.settings_keeper import SettingsKeeper
from pplex_desktop.ui.settings.welcome import WelcomeChoice, WelcomeDialog
from pplex_desktop.ui.status import StatusLine
from pplex_desktop.ui.talk.live_panel import LivePanel
from pplex_desktop.ui.tray import Tray

_log = logging.getLogger(__name__)
QUIT_TIMEOUT_MS = 15_000


@dataclass
class Services:
    """What app.py opens before any window exists."""

    data_dir: Path
    settings: SettingsStore
    keystore: KeyStore
    server: GatewayServer
    owner_key: str
    admin_secret: str | None = None  # only on first launch, to show once
    folder_lock: FolderLock | None = None  # held until the shell has finished
    pages: PageRegistry | None = None  # None: default_pages()
    audio: AudioSystem | None = None  # None: the real sound devices (the Voices tab)


def default_pages(audio: AudioSystem | None = None) -> PageRegistry:
    """The pages this app ships; offline files will register theirs next to these.

    ``audio`` replaces the real sound devices of the Talk page (tests, screenshots).
    """
    registry = PageRegistry()
    registry.register(PageSpec("server", "Server", ServerPanel, order=10))
    registry.register(
        PageSpec(
            "live",
            "Talk",
            lambda ctx: LivePanel(ctx, audio),
            order=15,
            tooltip="Talk with the model live, through this app's gateway.",
        )
    )
    registry.register(PageSpec("offline", "Offline", OfflinePanel, order=17))
    registry.register(PageSpec("keys", "Keys", KeysPanel, order=20))
    registry.register(PageSpec("activity", "Activity", ActivityPanel, order=90))
    return registry


class DesktopShell(QObject):
    finished = Signal()  # the gateway has stopped and the app may exit

    def __init__(self, services: Services, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.quitting = False
        self._finished = False
        self.welcome: WelcomeDialog | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.close_box: QMessageBox | None = None
        server = services.server

        self.status = StatusLine(self)
        self.errors = ErrorReporter(self.status, self)
        self.log_handler = log_handler.QtLogHandler()
        log_handler.install(self.log_handler)
        self.bridge = GatewayBridge(server.thread, server.events, self)
        # The desktop's own chores (key listing, settings saves, the Offline page's record and
        # uploads) never run on the gateway's loop, beside the live audio it relays.
        self.io_thread = LoopThread("pplex-desktop-io")
        self.io = IoBridge(self.io_thread, self)
        self.gateway = GatewayController(server, self.bridge, self)
        self.settings = SettingsKeeper(
            services.settings, self.io, self.gateway, services.keystore, self
        )
        self.counters = LiveCounters(
            self.bridge, services.keystore, self.gateway.poll_backends, io=self.io, parent=self
        )
        self.bridge.failed.connect(self.errors.report)
        self.io.failed.connect(self.errors.report)
        self.context = DesktopContext(
            data_dir=services.data_dir,
            server=server,
            keystore=services.keystore,
            bridge=self.bridge,
            io=self.io,
            gateway=self.gateway,
            settings=self.settings,
            counters=self.counters,
            errors=self.errors,
            log_handler=self.log_handler,
            status=self.status,
            owner_key=services.owner_key,
        )
        pages = services.pages if services.pages is not None else default_pages()
        self.window = MainWindow(self.context, pages.specs())
        self.window.close_policy = self._close_requested
        self.window.settings_requested.connect(self.open_settings)
        self.window.quit_requested.connect(self.quit)
        self.errors.attach(self.window)
        self.tray = Tray(app_icon(), self)
        self.tray.show_hide_requested.connect(self.toggle_window)
        self.tray.server_toggled.connect(self._tray_server)
        self.tray.quit_requested.connect(self.quit)
        self.gateway.changed.connect(self.tray.show_view)
        self.gateway.changed.connect(self._announce)

    # -- starting ---------------------------------------------------------------------------------

    def launch(self) -> None:
        """Show the window at once; the gateway starts on its thread (after the welcome)."""
        self.errors.install()
        self.tray.show()
        # Started minimized with a tray, the tray icon stands in for the window.
        if not self.settings.current.start_minimized:
            self.window.show()
        elif not self.tray.available:
            self.window.showMinimized()
        if self.services.settings.problem:
            self.errors.user_error(self.services.settings.problem)
        self.counters.start()
        if self.services.admin_secret is not None:
            # After the window has painted: the welcome should never delay the first frame.
            QTimer.singleShot(0, self._show_welcome)
        else:
            self.gateway.start()

    def _show_welcome(self) -> None:
        dialog = WelcomeDialog(self.context, self.services.admin_secret, self.window)
        # The secret is on screen now; nothing else keeps it.
        self.services.admin_secret = None
        dialog.chosen.connect(self._welcome_chosen)
        dialog.finished.connect(lambda _r: dialog.deleteLater())
        self.welcome = dialog
        dialog.open()
        dialog.check_on_open()

    def _welcome_chosen(self, choice: WelcomeChoice) -> None:
        self.welcome = None
        if self.quitting:
            return  # quit during the welcome: setup stays unfinished and shows next time
        current = self.settings.current
        if choice.demo or not choice.backend_url:
            wanted = current.replace(demo=True)
        else:
            voices = current.backends[0].voices if current.backends else None
            backend = (
                BackendConfig(choice.backend_url, voices)
                if voices
                else BackendConfig(choice.backend_url)
            )
            wanted = current.replace(demo=False, backends=(backend,))

        def failed(error: BaseException) -> None:
            self.errors.report("saving the first settings", error)
            self.gateway.start()

        def saved(_settings: object) -> None:
            self.services.keystore.finish_setup()
            self.gateway.start()

        self.settings.update(wanted, saved, failed)

    def _announce(self, view: GatewayView) -> None:
        if view.state is GatewayState.FAILED and view.failure:
            self.status.post(view.failure, 0)

    # -- the window, the tray and the settings ----------------------------------------------------

    def open_settings(self) -> SettingsDialog:
        if self.settings_dialog is not None:
            self.settings_dialog.raise_()
            return self.settings_dialog
        dialog = SettingsDialog(self.context, self.window, audio=self.services.audio)

        def closed(_result: int) -> None:
            self.settings_dialog = None
            dialog.deleteLater()

        dialog.finished.connect(closed)
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def toggle_window(self) -> None:
        if self.window.isVisible() and not self.window.isMinimized():
            self.window.hide()
        else:
            self.window.showNormal()
            self.window.raise_()
            self.window.activateWindow()

    def _tray_server(self, on: bool) -> None:
        if on:
            self.gateway.start()
        else:
            self.gateway.stop("stopped from the tray")

    def _close_requested(self) -> bool:
        """Closing the window: ask, keep running (tray or minimized) or quit, per settings."""
        if self.quitting:
            return True
        action = self.settings.current.close_action
        if action == "quit":
            QTimer.singleShot(0, self.quit)
            return True
        if action == "minimize":
            self._keep_running()
            return False
        self._ask_on_close()
        return False

    def _keep_running(self) -> None:
        if self.tray.available:
            self.window.hide()
            self.tray.tell("pplex-desktop", "The gateway keeps running here in the tray.")
        else:
            self.window.showMinimized()

    def _ask_on_close(self) -> None:
        if self.close_box is not None:
            return
        where = "in the tray" if self.tray.available else "minimized"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Close pplex-desktop",
            "Quit pplex-desktop? The gateway stops and connected clients are disconnected. "
            f"Or keep it running {where}.",
            parent=self.window,
        )
        quit_button = box.addButton("Quit", QMessageBox.ButtonRole.DestructiveRole)
        keep_button = box.addButton(f"Keep running {where}", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        remember = QCheckBox("Remember my choice (change it in Settings)")
        box.setCheckBox(remember)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            self.close_box = None
            clicked = box.clickedButton()
            choice = (
                "quit" if clicked is quit_button else "minimize" if clicked is keep_button else None
            )
            if choice is None:
                return
            if remember.isChecked():
                self.settings.update(self.settings.current.replace(close_action=choice))
            if choice == "quit":
                self.quit()
            else:
                self._keep_running()

        box.finished.connect(finished)
        self.close_box = box
        box.open()

    # -- quitting --------------------------------------------------------------------------------

    def quit(self) -> None:
        """Stop the gateway gracefully (clients get close code 1001), then emit ``finished``."""
        if self.quitting:
            return
        self.quitting = True
        _log.info("pplex-desktop is quitting.")
        self._close_dialogs()
        self.window.save_state()
        for page in self.window.pages.values():
            call_hook(page, "shutdown")
        self.window.hide()
        self.tray.hide()
        self.counters.stop()
        # A gateway that cannot stop in time must not keep the app alive forever.
        self._quit_timer = QTimer(self)
        self._quit_timer.setSingleShot(True)
        self._quit_timer.timeout.connect(lambda: self._finish(timed_out=True))
        self._quit_timer.start(QUIT_TIMEOUT_MS)
        self.gateway.shutdown(lambda: self._finish(timed_out=False))

    def _close_dialogs(self) -> None:
        """Close every dialog, so no nested event loop (a file dialog's exec) outlives the quit
        and keeps the app's own loop from returning; a dialog closed like this chose nothing."""
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QDialog) and widget.isVisible():
                widget.reject()

    def _finish(self, *, timed_out: bool) -> None:
        if self._finished:
            return  # the timeout came first; the late stop has nothing left to do
        self._finished = True
        self._quit_timer.stop()
        if timed_out:
            _log.warning(
                "The gateway did not stop within %d s; quitting anyway.", QUIT_TIMEOUT_MS // 1000
            )
        self.bridge.close()
        self.io.close()
        for thread in (self.services.server.thread, self.io_thread):
            try:
                thread.stop()
            except RuntimeError as exc:
                _log.warning("%s", exc)
        self.io.finish()  # the last saves reach the disk before the stores close
        self.services.keystore.close()
        if self.services.folder_lock is not None:
            self.services.folder_lock.release()
        log_handler.uninstall(self.log_handler)
        self.errors.uninstall()
        self.window.close()
        self.window.deleteLater()
        ui_state.forget(self.services.data_dir)
        _log.info("pplex-desktop has stopped.")
        self.finished.emit()
