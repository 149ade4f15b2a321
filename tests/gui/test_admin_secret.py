"""Settings → Application → "Reset admin secret…": asked first, shown once, the old one dead."""

from __future__ import annotations

import urllib.error
import urllib.request

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from pplex_desktop.ui.settings.admin_secret import AdminSecretReset, NewSecretDialog
from pplex_desktop.ui.settings.settings_dialog import SettingsDialog
from pplex_desktop.ui.shell import DesktopShell
from tests.gui.conftest import ADMIN_SECRET, WAIT_MS, Launch, url_of

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def admin_status(shell: DesktopShell, secret: str) -> int:
    request = urllib.request.Request(url_of(shell) + "/admin/keys")
    request.add_header("X-Admin-Secret", secret)
    try:
        with _OPENER.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def ask_reset(qtbot: QtBot, shell: DesktopShell) -> tuple[SettingsDialog, AdminSecretReset]:
    dialog = shell.open_settings()
    qtbot.mouseClick(dialog.reset_secret_button, Qt.MouseButton.LeftButton)
    reset = dialog.secret_reset
    qtbot.waitUntil(lambda: reset.confirm_box is not None, timeout=WAIT_MS)
    return dialog, reset


def test_reset_shows_a_new_secret_once_and_the_old_one_stops_working(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    assert admin_status(shell, ADMIN_SECRET) == 200
    _dialog, reset = ask_reset(qtbot, shell)
    box = reset.confirm_box
    assert box is not None and "stops working at once" in box.text()
    qtbot.mouseClick(reset.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: reset.shown is not None, timeout=WAIT_MS)
    shown = reset.shown
    assert isinstance(shown, NewSecretDialog) and shown.isVisible()
    secret = shown.secret_edit.text()
    assert secret.startswith("pplxadmin_") and secret != ADMIN_SECRET
    # The tests set PPLEX_ADMIN_SECRET, and the dialog says what that means at the next start.
    notes = [item.text() for item in shown.findChildren(QLabel)]
    assert any("PPLEX_ADMIN_SECRET is set" in note for note in notes)
    qtbot.mouseClick(shown.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == secret
    assert admin_status(shell, ADMIN_SECRET) == 401
    assert admin_status(shell, secret) == 200
    assert ADMIN_SECRET not in shell.status.last and secret not in shell.status.last
    shown.accept()
    assert shown.secret_edit.text() == ""
    qtbot.waitUntil(lambda: reset.shown is None, timeout=WAIT_MS)


def test_cancelling_the_reset_keeps_the_secret(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    _dialog, reset = ask_reset(qtbot, shell)
    box = reset.confirm_box
    assert box is not None
    box.button(box.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: reset.confirm_box is None, timeout=WAIT_MS)
    qtbot.wait(100)  # a reset, if one were wrongly under way, has time to land
    assert reset.shown is None
    assert admin_status(shell, ADMIN_SECRET) == 200
