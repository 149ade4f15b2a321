"""The keys page against the real store and gateway: a key made in the panel works over HTTP,
and once revoked in the panel it is refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, cast

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QMessageBox, QPushButton, QStyle
from pytestqt.qtbot import QtBot

from pplex_desktop.core.keystore import KIND_OWNER, ApiKey
from pplex_desktop.ui.keys.key_dialogs import Expiry, KeyLimitsDialog, NewKeyDialog
from pplex_desktop.ui.keys.keys_model import (
    COLUMNS,
    KEY_ROLE,
    LAST_USED,
    LIMITS,
    NAME,
    PREFIX,
    STATE,
    VOICES_SUFFIX,
)
from pplex_desktop.ui.keys.keys_panel import KeysPanel
from pplex_desktop.ui.main_window import DEFAULT_SIZE
from pplex_desktop.ui.shell import DesktopShell
from tests.gui.conftest import ADMIN_SECRET, WAIT_MS, Launch, http, url_of
from tests.voice_samples import speechlike, wav_bytes

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def keys_page(shell: object) -> KeysPanel:
    page = shell.window.show_page("keys")  # type: ignore[attr-defined]
    assert isinstance(page, KeysPanel)
    return page


def shown_names(panel: KeysPanel) -> list[str]:
    return [panel.proxy.index(row, 0).data() for row in range(panel.proxy.rowCount())]


def create_key(
    qtbot: QtBot, panel: KeysPanel, name: str, rpm: int = 60, *, voices: bool = False
) -> str:
    qtbot.mouseClick(panel.new_button, Qt.MouseButton.LeftButton)
    dialog = panel.limits_dialog
    assert isinstance(dialog, KeyLimitsDialog) and dialog.isVisible()
    dialog.name_edit.setText(name)
    dialog.rpm_spin.setValue(rpm)
    assert not dialog.voices_check.isChecked()  # no key gets the permission unasked
    if voices:
        qtbot.mouseClick(dialog.voices_check, Qt.MouseButton.LeftButton)
        assert dialog.voices_check.isChecked()
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
    qtbot.waitUntil(lambda: name in record_names(panel), timeout=WAIT_MS)
    return key


def record_names(panel: KeysPanel) -> list[str]:
    """The names of the keys listed (the cells may add to them, as "(manages voices)")."""
    return [
        cast(ApiKey, panel.proxy.index(row, 0).data(KEY_ROLE)).name
        for row in range(panel.proxy.rowCount())
    ]


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
    button = next(b for b in box.buttons() if b.text().replace("&", "") == verb)
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
        lambda: (
            panel.proxy.index(0, STATE).data() == "revoked" and not panel.revoke_button.isEnabled()
        ),
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
    qtbot.waitUntil(
        lambda: panel.proxy.index(0, LIMITS).data() == "7/min, 3 at once", timeout=WAIT_MS
    )

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
    assert "pplex-desktop (this app)" in names  # its own name says whose it is, once
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


def open_edit(qtbot: QtBot, panel: KeysPanel, name: str) -> KeyLimitsDialog:
    select(qtbot, panel, name)
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    dialog = panel.limits_dialog
    assert isinstance(dialog, KeyLimitsDialog) and dialog.objectName() == "editKeyDialog"
    return dialog


def press_ok(qtbot: QtBot, dialog: KeyLimitsDialog) -> None:
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton
    )


def test_a_revoked_key_cannot_be_edited_and_the_button_says_why(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    panel = keys_page(shell)
    create_key(qtbot, panel, "old phone")
    record = select(qtbot, panel, "old phone")
    assert panel.edit_button.isEnabled()
    assert "expiry" in panel.edit_button.toolTip()
    shell.services.keystore.revoke(record.id)
    qtbot.waitUntil(
        lambda: panel.proxy.index(0, STATE).data() == "revoked", timeout=WAIT_MS
    )  # the page follows the store's change by itself
    select(qtbot, panel, "old phone")
    assert not panel.edit_button.isEnabled()
    assert panel.edit_button.toolTip() == (
        "A revoked key cannot be changed or brought back; make a new key instead."
    )
    panel.edit_selected()  # a double click takes this way: nothing opens either
    assert panel.limits_dialog is None
    assert panel.delete_button.isEnabled()  # deleting it is still possible


def test_the_expiry_is_changed_in_the_dialog_as_the_admin_api_changes_it(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    panel = keys_page(shell)
    store = shell.services.keystore
    key = create_key(qtbot, panel, "tablet")

    def expiry() -> float | None:
        status, body = http(url_of(shell) + "/v1/info", key=key)
        assert status == 200
        value = body["key"]["expires_at"]
        return None if value is None else float(value)

    assert expiry() is None
    dialog = open_edit(qtbot, panel, "tablet")
    assert dialog.expiry_combo.currentIndex() == Expiry.NEVER
    dialog.set_expiry(Expiry.IN_DAYS, days=2)
    before = store.clock.wall()
    press_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: panel.limits_dialog is None, timeout=WAIT_MS)
    in_two_days = expiry()
    assert in_two_days is not None
    assert before + 2 * 86_400 <= in_two_days <= store.clock.wall() + 2 * 86_400
    qtbot.waitUntil(
        lambda: str(panel.proxy.index(0, STATE).data()).startswith("active until "),
        timeout=WAIT_MS,
    )

    # Reopened, the dialog shows that date; OK without touching it keeps it to the second.
    dialog = open_edit(qtbot, panel, "tablet")
    assert dialog.expiry_combo.currentIndex() == Expiry.ON_DATE
    assert abs(dialog.expiry_date.dateTime().toSecsSinceEpoch() - in_two_days) < 60
    dialog.sessions_spin.setValue(2)
    press_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: panel.limits_dialog is None, timeout=WAIT_MS)
    assert expiry() == in_two_days

    # A date in the past is the store's sentence, in the dialog, which stays open.
    dialog = open_edit(qtbot, panel, "tablet")
    dialog.set_expiry(Expiry.ON_DATE, at=store.clock.wall() - 3_600)
    press_ok(qtbot, dialog)
    qtbot.waitUntil(dialog.error_label.isVisible, timeout=WAIT_MS)
    assert dialog.error_label.text() == "The expiry time must be a finite time in the future."
    assert dialog.isVisible() and dialog.buttons.isEnabled()
    later = store.clock.wall() + 10 * 86_400
    dialog.set_expiry(Expiry.ON_DATE, at=later)
    press_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: panel.limits_dialog is None, timeout=WAIT_MS)
    assert expiry() == float(int(later))

    dialog = open_edit(qtbot, panel, "tablet")
    dialog.set_expiry(Expiry.NEVER)
    press_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: panel.limits_dialog is None, timeout=WAIT_MS)
    assert expiry() is None
    qtbot.waitUntil(lambda: panel.proxy.index(0, STATE).data() == "active", timeout=WAIT_MS)


def text_fits(panel: KeysPanel, row: int, column: int) -> bool:
    """Whether the column is as wide as the cell's text and the style's margins around it."""
    table = panel.table
    index = panel.proxy.index(row, column)
    text = str(index.data())
    font = index.data(Qt.ItemDataRole.FontRole)
    metrics = QFontMetrics(font) if isinstance(font, QFont) else table.fontMetrics()
    margin = table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1
    return table.columnWidth(column) >= metrics.horizontalAdvance(text) + 2 * margin


def test_every_key_prefix_takes_the_same_width(qtbot: QtBot, launch: Launch) -> None:
    # Random prefixes in a proportional font took 64 to 115 px: one of wide letters squeezed the
    # name column until the app's own name was cut at the default window size.
    shell = launch()
    panel = keys_page(shell)
    shell.services.keystore.create("phone")
    panel.refresh()
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 1, timeout=WAIT_MS)
    font = panel.proxy.index(0, PREFIX).data(Qt.ItemDataRole.FontRole)
    assert isinstance(font, QFont)
    metrics = QFontMetrics(font)
    widths = {metrics.horizontalAdvance(f"pplx_{letters}…") for letters in ("WWWWWW", "iiiiii")}
    assert len(widths) == 1


def test_the_apps_own_key_and_an_expiry_show_whole_at_the_default_window_size(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    assert shell.window.size() == DEFAULT_SIZE
    panel = keys_page(shell)
    store = shell.services.keystore
    made = store.create("phone", rpm=600, max_sessions=12, expires_at=store.clock.wall() + 86_400)
    assert http(url_of(shell) + "/v1/info", key=made.key)[0] == 200
    store.record_usage(made.record.id, audio_in_s=600.0, audio_out_s=700.0)
    store.flush_usage()
    panel.owner_check.setChecked(True)
    panel.refresh()
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 2, timeout=WAIT_MS)
    rows = {panel.proxy.index(r, 0).data(KEY_ROLE).kind: r for r in range(2)}
    owner, phone = rows[KIND_OWNER], rows["user"]
    assert panel.proxy.index(owner, NAME).data() == "pplex-desktop (this app)"
    assert str(panel.proxy.index(phone, STATE).data()).startswith("active until 20")
    assert panel.proxy.index(phone, LIMITS).data() == "600/min, 12 at once"
    qtbot.waitUntil(
        lambda: all(text_fits(panel, r, c) for r in range(2) for c in range(len(COLUMNS))),
        timeout=WAIT_MS,
    )
    assert not panel.table.horizontalScrollBar().isVisible()
    # A long name is cut with an ellipsis, never the other columns; its tooltip is whole.
    store.update(made.record.id, name="the tablet on the kitchen wall beside the fridge door")
    # A store change made behind the page's back is seen at its next refresh; ask for it rather
    # than wait for the 5 s usage timer, which a loaded machine can stretch past the wait.
    panel.refresh()
    qtbot.waitUntil(
        lambda: panel.proxy.index(phone, NAME).data().startswith("the tablet"), timeout=WAIT_MS
    )
    assert not text_fits(panel, phone, NAME)
    assert all(text_fits(panel, r, c) for r in range(2) for c in range(1, len(COLUMNS)))
    assert panel.proxy.index(phone, NAME).data(Qt.ItemDataRole.ToolTipRole) == (
        "the tablet on the kitchen wall beside the fridge door"
    )
    assert "Last used" in panel.proxy.index(phone, LAST_USED).data(Qt.ItemDataRole.ToolTipRole)


def send(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    try:
        with _OPENER.open(request, timeout=10) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def admin_permissions(shell: DesktopShell, name: str) -> dict[str, Any]:
    """The key's permissions as GET /admin/keys reports them."""
    request = urllib.request.Request(url_of(shell) + "/admin/keys")
    request.add_header("X-Admin-Secret", ADMIN_SECRET)
    status, body = send(request)
    assert status == 200
    found = [k for k in body["keys"] if k["name"] == name]
    assert len(found) == 1, f"{name} is not listed once by the admin API"
    return cast(dict[str, Any], found[0]["permissions"])


def upload_voice(shell: DesktopShell, key: str, name: str) -> tuple[int, dict[str, Any]]:
    """POST /v1/voices with a voice, its name and consent, as a client with ``key`` sends it."""
    boundary = "pplex-gui-test-boundary"
    audio = wav_bytes(speechlike(12.0, 48_000, level=0.1), 48_000)
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'
        for field, value in (("name", name), ("consent", "true"))
    )
    audio_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="take.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    )
    body = head.encode() + audio_head.encode() + audio + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url_of(shell) + "/v1/voices", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("X-API-Key", key)
    return send(request)


def test_the_voices_permission_is_granted_and_taken_back_on_the_keys_page(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    panel = keys_page(shell)
    allowed = create_key(qtbot, panel, "voice maker", voices=True)
    plain = create_key(qtbot, panel, "listener")

    assert admin_permissions(shell, "voice maker") == {"voices": True}
    assert admin_permissions(shell, "listener") == {"voices": False}
    assert "voice maker" + VOICES_SUFFIX in shown_names(panel)
    assert "listener" in shown_names(panel)
    record = select(qtbot, panel, "voice maker")
    row = panel.table.selectionModel().selectedRows()[0].row()
    tip = panel.proxy.index(row, NAME).data(Qt.ItemDataRole.ToolTipRole)
    assert "voices permission" in tip

    status, body = upload_voice(shell, allowed, "granted")
    assert status == 201, body
    assert body["voice"] == "granted.wav"
    status, body = upload_voice(shell, plain, "refused")
    assert status == 403
    assert body["error"]["code"] == "voices_permission_required"

    # Taken back in the edit dialog, which shows the permission the key has.
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    dialog = panel.limits_dialog
    assert isinstance(dialog, KeyLimitsDialog) and dialog.objectName() == "editKeyDialog"
    assert dialog.voices_check.isChecked()
    qtbot.mouseClick(dialog.voices_check, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Ok), Qt.MouseButton.LeftButton
    )
    store = shell.services.keystore
    qtbot.waitUntil(lambda: not store.get(record.id).can_manage_voices, timeout=WAIT_MS)
    assert admin_permissions(shell, "voice maker") == {"voices": False}
    status, body = upload_voice(shell, allowed, "again")
    assert status == 403
    assert body["error"]["code"] == "voices_permission_required"
    qtbot.waitUntil(lambda: "voice maker" in shown_names(panel), timeout=WAIT_MS)
