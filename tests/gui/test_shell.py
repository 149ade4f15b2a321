"""The app around the pages: plug-in pages, closing the window, errors, the tray, the icon."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QMessageBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from pplex_desktop.core.settings import Settings
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.look import app_icon, icon_pixmap, style_sheet
from pplex_desktop.ui.pages import PageRegistry, PageSpec
from pplex_desktop.ui.shell import default_pages
from tests.gui.conftest import WAIT_MS, Launch, http, url_of


class PluginPage(QLabel):
    """What a page registered later gets: the context, hence key, URL and bridge."""

    def __init__(self, ctx: DesktopContext) -> None:
        super().__init__("extra")
        self.ctx = ctx
        self.shown = 0
        self.stopped = False

    def page_shown(self) -> None:
        self.shown += 1

    def shutdown(self) -> None:
        self.stopped = True


def test_a_plug_in_page_gets_the_owner_key_and_the_gateway_url(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    page = shell.window.add_page(PageSpec("extra", "Extra", PluginPage, order=25))
    assert isinstance(page, PluginPage)
    titles = [shell.window.navigation.item(i).text() for i in range(7)]
    assert titles == ["Server", "Talk", "Offline", "Keys", "Extra", "Activity", "Settings"]
    shell.window.show_page("extra")
    assert page.shown == 1
    url = page.ctx.gateway_url()
    assert url == url_of(shell)
    status, body = http(url + "/v1/info", key=page.ctx.owner_key)
    assert status == 200 and body["key"]["name"] == "pplex-desktop (this app)"
    with pytest.raises(ValueError, match="already"):
        shell.window.add_page(PageSpec("extra", "Again", PluginPage))
    with qtbot.waitSignal(shell.finished, timeout=WAIT_MS):
        shell.quit()
    assert page.stopped


def _blank_page(_context: DesktopContext) -> QWidget:
    return QWidget()


def test_the_registry_orders_and_refuses_duplicates() -> None:
    registry = default_pages()
    registry.register(PageSpec("extra", "Extra", _blank_page, order=25))
    assert [s.key for s in registry.specs()] == [
        "server",
        "live",
        "offline",
        "keys",
        "extra",
        "activity",
    ]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(PageSpec("keys", "Keys again", _blank_page))
    assert "extra" in registry and "live" not in PageRegistry()


def test_each_launch_replaces_the_owner_key(qtbot: QtBot, launch: Launch) -> None:
    from tests.gui.conftest import quit_gracefully

    first = launch()
    old_key = first.context.owner_key
    folder = first.services.data_dir
    quit_gracefully(qtbot, first)
    second = launch(data_dir=folder)
    owners = [k for k in second.services.keystore.list_keys() if k.kind == "owner"]
    assert len(owners) == 1
    assert http(url_of(second) + "/v1/info", key=old_key)[1]["error"]["code"] == "unknown_api_key"
    assert http(url_of(second) + "/v1/info", key=second.context.owner_key)[0] == 200


def test_closing_the_window_asks_by_default(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    assert not shell.tray.available  # offscreen has no tray: the app degrades to minimizing
    shell.window.close()
    box = shell.close_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "Quit pplex-desktop?" in box.text()
    box.checkBox().setChecked(True)  # remember the choice
    keep = next(b for b in box.buttons() if b.text().startswith("Keep running"))
    assert isinstance(keep, QPushButton)
    qtbot.mouseClick(keep, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(shell.window.isMinimized, timeout=WAIT_MS)
    assert not shell.quitting
    qtbot.waitUntil(lambda: shell.settings.current.close_action == "minimize", timeout=WAIT_MS)
    shell.window.showNormal()
    shell.window.close()  # remembered: no question this time
    assert shell.close_box is None
    assert shell.window.isMinimized()


def test_closing_with_quit_stops_the_gateway(qtbot: QtBot, launch: Launch) -> None:
    shell = launch(settings=Settings(close_action="quit"))
    url = url_of(shell)
    with qtbot.waitSignal(shell.finished, timeout=WAIT_MS):
        shell.window.close()
    assert not shell.services.server.thread.running
    with pytest.raises(OSError):
        http(url + "/healthz")


@pytest.mark.expect_error_logs
def test_an_unexpected_error_is_logged_and_shown_once(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    shown: list[str] = []
    shell.errors.shown.connect(shown.append)
    error = RuntimeError("a bug in a slot")
    for _ in range(2):
        sys.excepthook(RuntimeError, error, None)
    assert len(shown) == 1
    assert "a bug in a slot" in shown[0]
    assert "keeps running" in shown[0]
    assert shell.window.statusBar().currentMessage().startswith("Something went wrong")
    assert shell.errors.dialog is not None and shell.errors.dialog.isVisible()
    shell.errors.dialog.close()

    # A failed operation on the gateway thread nobody handled reaches the user too.
    def broken() -> None:
        raise KeyError("lost")

    shell.bridge.call_fn(broken, what="doing something broken")
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=WAIT_MS)
    assert "while doing something broken" in shown[1]
    # ...and the app keeps serving.
    assert http(url_of(shell) + "/healthz")[0] == 200


def test_a_user_error_goes_to_the_status_bar(launch: Launch) -> None:
    shell = launch()
    from pplex_desktop.core.errors import NotFoundError

    shell.errors.report("revoking a key", NotFoundError("There is no API key with id 9."))
    assert shell.window.statusBar().currentMessage() == "There is no API key with id 9."
    assert shell.errors.dialog is None


def test_the_icon_and_the_style_sheet_ship_with_the_package(qtbot: QtBot) -> None:
    pixmap = icon_pixmap(64)
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_ARGB32)
    assert image.pixelColor(32, 4).alpha() == 255  # the tile is drawn
    assert image.pixelColor(0, 0).alpha() == 0  # with rounded, transparent corners
    assert not app_icon().isNull()
    assert "QListWidget#navigation" in style_sheet()


def test_geometry_and_page_are_remembered(qtbot: QtBot, launch: Launch) -> None:
    from tests.gui.conftest import quit_gracefully

    first = launch()
    # The offscreen screen is 800x600 and the window's minimum width is close to 800: the
    # height is what can change here.
    first.window.resize(first.window.width(), 520)
    size = first.window.size()
    assert size.height() == 520 != second_default_size().height()
    first.window.show_page("activity")
    folder = first.services.data_dir
    quit_gracefully(qtbot, first)
    second = launch(data_dir=folder)
    assert second.window.current_key == "activity"
    # restoreGeometry() fits the width into the small offscreen screen; the height survives.
    assert second.window.height() == size.height()


def second_default_size() -> QSize:
    from pplex_desktop.ui.main_window import DEFAULT_SIZE

    return DEFAULT_SIZE


def test_quitting_tells_live_clients_1001(qtbot: QtBot, launch: Launch) -> None:
    """A LAN client in a conversation hears "going away", not a dropped connection."""
    from pplex_desktop.core.loop_thread import LoopThread
    from pplex_desktop.moshi.client import ClosedEvent, MoshiSession, SessionOptions
    from tests.gui.conftest import quit_gracefully, url_of

    shell = launch()
    client = LoopThread("test-client")
    client.start()
    try:
        session = client.run(
            MoshiSession.connect(url_of(shell), SessionOptions(api_key=shell.context.owner_key)),
            timeout=20,
        )

        async def last_event() -> object:
            events = [e async for e in session.events()]
            return events[-1]

        closing = client.submit(last_event())
        quit_gracefully(qtbot, shell)
        assert closing.result(timeout=20) == ClosedEvent(1001, "The gateway is shutting down.")
    finally:
        client.stop()


def test_settings_is_last_in_the_sidebar_and_opens_the_dialog(qtbot: QtBot, launch: Launch) -> None:
    from pplex_desktop.ui.settings.settings_dialog import SettingsDialog

    shell = launch()
    navigation = shell.window.navigation
    titles = [navigation.item(i).text() for i in range(navigation.count())]
    assert titles == ["Server", "Talk", "Offline", "Keys", "Activity", "Settings"]
    shell.window.show_page("keys")
    item = shell.window.settings_item
    rect = navigation.visualItemRect(item)
    qtbot.mouseClick(navigation.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: shell.settings_dialog is not None, timeout=WAIT_MS)
    dialog = shell.settings_dialog
    assert isinstance(dialog, SettingsDialog) and dialog.isVisible()
    # The page underneath stays what it was: Settings is a door, not a page.
    assert shell.window.current_key == "keys"
    assert shell.window.stack.currentWidget() is shell.window.pages["keys"]
    dialog.reject()
    qtbot.waitUntil(lambda: shell.settings_dialog is None, timeout=WAIT_MS)
    qtbot.mouseClick(navigation.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: shell.settings_dialog is not None, timeout=WAIT_MS)
    with pytest.raises(ValueError, match="settings entry"):
        shell.window.add_page(PageSpec("settings", "Mine", lambda _ctx: QWidget()))


def test_a_long_status_message_is_elided_beside_the_gateway_state(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    window = shell.window
    message = "The settings were saved, " + "and this sentence goes on and on " * 8 + "to here."
    shell.status.post(message, 200)
    bar = window.status_bar
    assert bar.currentMessage() == message
    shown = bar.message_label.text()
    assert shown.endswith("…") and len(shown) < len(message)
    assert bar.message_label.toolTip() == message
    gateway = bar.gateway_label
    assert gateway.full_text.startswith("Gateway running on http://127.0.0.1:")
    assert gateway.isVisible() and bar.message_label.isVisible()
    # Side by side, never on top of each other.
    assert bar.message_label.geometry().right() < gateway.geometry().left()
    qtbot.waitUntil(lambda: bar.currentMessage() == "", timeout=WAIT_MS)
    assert gateway.full_text.startswith("Gateway running")
