"""The keys page against the real store and gateway: a key made in the panel works over HTTP,
and once revoked in the panel it is refused."""

from __future__ import annotations

from typing import cast

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from pplex_desktop.core.keystore import KIND_OWNER, ApiKey
from pplex_desktop.ui.key_dialogs import KeyLimitsDialog, NewKeyDialog
from pplex_desktop.ui.keys_model import KEY_ROLE
from pplex_desktop.ui.keys_panel import KeysPanel
from tests.gui.conftest import WAIT_MS, Launch, http, url_of


def keys_page(shell: object) -> KeysPanel:
    page = shell.window.show_page("keys")  # type: ignore[attr-defined]
    assert isinstance(page, KeysPanel)
    return page


def shown_names(panel: KeysPanel) -> list[str]:
    return [panel.proxy.index(row, 0).data() for row in range(panel.proxy.rowCount())]


def create_key(qtbot: QtBot, panel: KeysPanel, name: str, rpm: int = 60) -> str:
    qtbot.mouseClick(panel.new_button, Qt.MouseButton.LeftButton)
    dialog = panel.limits_dialog
    assert isinstance(dialog, KeyLimitsDialog) and dialog.isVisible()
    dialog.name_edit.setText(name)
    dialog.rpm_spin.setValue(rpm)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.new_key_dialog is not None, timeout=WAIT_MS)
    shown = panel.new_key_dialog
    assert isinstance(shown, NewKeyDialog)
    key = shown.key_edit.text()
    assert key.startswith("pplx_")
    qtbot.mouseClick(shown.copy_button, Qt.MouseButton.LeftButton)
    shown.reject()
    assert shown.key_edit.text() == ""  # the plaintext leaves the widget with the dialog
    qtbot.waitUntil(lambda: name in shown_names(panel), timeout=WAIT_MS)
    return key


def select(qtbot: QtBot, panel: KeysPanel, name: str) -> ApiKey:
    for row in range(panel.proxy.rowCount()):
        record = cast(ApiKey, panel.proxy.index(row, 0).data(KEY_ROLE))
        if record.name == name:
            panel.select_key(record.id)
            assert panel.selected() == record
            return record
    raise AssertionError(f"{name} is not in the table")


def confirm(qtbot: QtBot, panel: KeysPanel, verb: str) -> None:
    box = panel.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    button = next(b for b in box.buttons() if b.text() == verb)
    assert isinstance(button, QPushButton)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_a_key_made_in_the_panel_works_until_revoked_there(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = keys_page(shell)
    key = create_key(qtbot, panel, "kitchen tablet", rpm=42)

    status, body = http(url_of(shell) + "/v1/info", key=key)
    assert status == 200
    assert body["key"]["name"] == "kitchen tablet"
    assert body["key"]["rpm"] == 42

    record = select(qtbot, panel, "kitchen tablet")
    assert panel.revoke_button.isEnabled()
    qtbot.mouseClick(panel.revoke_button, Qt.MouseButton.LeftButton)
    confirm(qtbot, panel, "Revoke")
    qtbot.waitUntil(
        lambda: shell.services.keystore.get(record.id).revoked_at is not None, timeout=WAIT_MS
    )
    status, body = http(url_of(shell) + "/v1/info", key=key)
    assert status == 401
    assert body["error"]["code"] == "revoked_api_key"
    qtbot.waitUntil(
        lambda: panel.proxy.index(0, 7).data() == "revoked" and not panel.revoke_button.isEnabled(),
        timeout=WAIT_MS,
    )


def test_cancelling_the_confirmation_keeps_the_key(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = keys_page(shell)
    key = create_key(qtbot, panel, "laptop")
    select(qtbot, panel, "laptop")
    qtbot.mouseClick(panel.revoke_button, Qt.MouseButton.LeftButton)
    box = panel.confirm_box
    assert box is not None
    box.reject()
    assert http(url_of(shell) + "/v1/info", key=key)[0] == 200


def test_edit_limits_and_delete(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = keys_page(shell)
    key = create_key(qtbot, panel, "script")
    select(qtbot, panel, "script")
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    dialog = panel.limits_dialog
    assert dialog is not None and dialog.objectName() == "editKeyDialog"
    dialog.rpm_spin.setValue(7)
    dialog.sessions_spin.setValue(3)
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: panel.limits_dialog is None, timeout=WAIT_MS)
    status, body = http(url_of(shell) + "/v1/info", key=key)
    assert status == 200
    assert (body["key"]["rpm"], body["key"]["max_sessions"]) == (7, 3)
    qtbot.waitUntil(lambda: panel.proxy.index(0, 2).data() == "7", timeout=WAIT_MS)

    select(qtbot, panel, "script")
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    confirm(qtbot, panel, "Delete")
    qtbot.waitUntil(lambda: "script" not in shown_names(panel), timeout=WAIT_MS)
    status, body = http(url_of(shell) + "/v1/info", key=key)
    assert (status, body["error"]["code"]) == (401, "unknown_api_key")


def test_a_refused_name_is_a_sentence_in_the_dialog(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = keys_page(shell)
    qtbot.mouseClick(panel.new_button, Qt.MouseButton.LeftButton)
    dialog = panel.limits_dialog
    assert dialog is not None
    dialog.name_edit.setText("x" * 99 + " y")  # 101 characters: the store refuses it
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(dialog.error_label.isVisible, timeout=WAIT_MS)
    assert "at most 100 characters" in dialog.error_label.text()
    assert dialog.isVisible() and dialog.buttons.isEnabled()
    dialog.reject()


def test_filter_and_the_apps_own_key(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = keys_page(shell)
    create_key(qtbot, panel, "phone")
    create_key(qtbot, panel, "printer script")
    assert sorted(shown_names(panel)) == ["phone", "printer script"]

    panel.filter_edit.setText("PHO")
    assert shown_names(panel) == ["phone"]
    panel.filter_edit.clear()

    owner = [k for k in shell.services.keystore.list_keys() if k.kind == KIND_OWNER]
    assert len(owner) == 1  # the app's key, replaced at every start
    panel.owner_check.setChecked(True)
    names = shown_names(panel)
    assert any(n.endswith("this app") for n in names)
    select(qtbot, panel, owner[0].name)
    assert not panel.revoke_button.isEnabled()
    assert not panel.delete_button.isEnabled()
    # The owner key works against our own gateway.
    assert http(url_of(shell) + "/v1/info", key=shell.context.owner_key)[0] == 200


def test_keys_can_be_managed_while_the_gateway_is_stopped(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = keys_page(shell)
    shell.gateway.stop()
    qtbot.waitUntil(lambda: shell.gateway.view.url is None, timeout=WAIT_MS)
    create_key(qtbot, panel, "offline made")
    names = [k.name for k in shell.services.keystore.list_keys()]
    assert "offline made" in names
