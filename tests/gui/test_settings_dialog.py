"""The settings dialog: refusals as sentences next to their field, atomic saves, restarts only
when the gateway needs one, and this run's --port/--demo kept out of the file."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import cast

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from pplex_desktop.core.personas import PRESETS
from pplex_desktop.core.settings import SETTINGS_NAME, BackendConfig, Settings
from pplex_desktop.desktop.backend_probe import ProbeResult
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.settings.settings_dialog import FOLDER_COLUMN, SettingsDialog
from tests.gui.conftest import WAIT_MS, Launch, cell, http, running, url_of


def open_dialog(shell: object) -> SettingsDialog:
    dialog = cast(SettingsDialog, shell.open_settings())  # type: ignore[attr-defined]
    assert dialog.isVisible()
    return dialog


def click_save(qtbot: QtBot, dialog: SettingsDialog) -> None:
    button = dialog.buttons.button(dialog.buttons.StandardButton.Save)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def saved_file(shell: object) -> dict[str, object]:
    path = shell.services.data_dir / SETTINGS_NAME  # type: ignore[attr-defined]
    return cast(dict[str, object], json.loads(path.read_text()))


def test_refusals_are_shown_next_to_their_fields(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    dialog = open_dialog(shell)
    dialog.demo_check.setChecked(False)
    cell(dialog.backends_table, 0, 0).setText("ftp://nowhere")
    dialog.persona_edit.setPlainText("   ")
    dialog.voice_combo.setCurrentText("../../etc/passwd")
    click_save(qtbot, dialog)
    errors = dialog.errors
    assert errors["backends"].isVisible()
    assert "Row 1: 'ftp://nowhere' is not a model server address" in errors["backends"].text()
    assert errors["default_persona"].text() == "The default persona cannot be empty."
    assert "is not a voice name" in errors["default_voice"].text()
    assert not errors["port"].isVisible()
    assert dialog.isVisible()  # nothing saved, nothing closed
    assert dialog.tabs.currentIndex() == 0  # the first refusal's tab is shown
    assert not (shell.services.data_dir / SETTINGS_NAME).exists()

    # No model server and no demo is refused as one rule, at the servers.
    dialog.backends_table.setRowCount(0)
    dialog.persona_edit.setPlainText(PRESETS[1].text)
    dialog.voice_combo.setCurrentText("NATM1")
    click_save(qtbot, dialog)
    assert errors["backends"].text() == "Configure at least one model server."
    assert not errors["default_persona"].isVisible()
    dialog.reject()


def test_save_normalises_writes_and_restarts_on_the_new_port(qtbot: QtBot, launch: Launch) -> None:
    shell = launch(port=None)  # the port comes from the settings, not from the command line
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    dialog = open_dialog(shell)
    cell(dialog.backends_table, 0, 0).setText("http://gpu-box:9000/api/chat")
    cell(dialog.backends_table, 0, 2).setText("NATF1, my-voice.wav")
    dialog.persona_combo.setCurrentText(PRESETS[2].title)
    dialog.voice_combo.setCurrentText("NATF1")
    dialog._numbers["port"].setValue(free_port)
    dialog._numbers["default_rpm"].setValue(25)
    click_save(qtbot, dialog)
    qtbot.waitUntil(lambda: shell.settings_dialog is None, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: (
            running(shell)
            and (address := shell.gateway.view.address) is not None
            and address.port == free_port
        ),
        timeout=WAIT_MS,
    )
    data = saved_file(shell)
    assert data["backends"] == [
        {"url": "ws://gpu-box:9000", "voices": ["NATF1.pt", "my-voice.wav"], "name": ""}
    ]
    assert data["default_persona"] == PRESETS[2].text
    assert data["default_voice"] == "NATF1.pt"
    assert data["port"] == free_port
    assert data["default_rpm"] == 25
    assert data["demo"] is False  # --demo was this run's override, untouched in the dialog
    assert http(url_of(shell) + "/healthz")[0] == 200
    # New keys get the new default limit.
    assert shell.services.keystore.default_rpm == 25


def test_ui_only_changes_do_not_restart_the_gateway(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    states: list[GatewayState] = []
    shell.gateway.changed.connect(lambda view: states.append(view.state))
    dialog = open_dialog(shell)
    dialog.close_combo.setCurrentIndex(2)  # quit
    dialog.minimized_check.setChecked(True)
    click_save(qtbot, dialog)
    qtbot.waitUntil(lambda: shell.settings_dialog is None, timeout=WAIT_MS)
    assert saved_file(shell)["close_action"] == "quit"
    assert saved_file(shell)["start_minimized"] is True
    assert states == []
    assert shell.settings.current.close_action == "quit"


def test_testing_a_model_server_from_the_dialog(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    dialog = open_dialog(shell)
    runner = shell.services.server.runner
    assert runner is not None
    demo = runner.demo
    assert demo is not None and demo.url is not None
    cell(dialog.backends_table, 0, 0).setText(demo.url)
    dialog.handshake_check.setChecked(True)
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.last_probe is not None, timeout=WAIT_MS)
    assert dialog.last_probe is not None
    assert dialog.last_probe.reachable and dialog.last_probe.handshake is True
    assert "accepted a conversation" in dialog.probe_label.text()

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
        dialog.last_probe = None
        dialog.handshake_check.setChecked(False)
        cell(dialog.backends_table, 0, 0).setText(f"127.0.0.1:{dead}")
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.last_probe is not None, timeout=WAIT_MS)
    probe = cast(ProbeResult | None, dialog.last_probe)  # set by the click, not by the test
    assert probe is not None and not probe.reachable
    assert dialog.probe_label.text().startswith(f"Nothing answers at ws://127.0.0.1:{dead}")
    dialog.reject()


def test_the_data_folder_is_shown(launch: Launch) -> None:
    shell = launch()
    dialog = open_dialog(shell)
    assert dialog.folder_label.text() == str(shell.services.data_dir)
    dialog.reject()


def test_a_model_servers_voice_folder_is_shown_changed_and_used(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    folder = tmp_path / "server-voices"
    folder.mkdir()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    url = f"ws://127.0.0.1:{dead}"
    shell = launch(demo=False, settings=Settings(backends=(BackendConfig(url, name="gpu"),)))
    dialog = open_dialog(shell)
    assert cell(dialog.backends_table, 0, FOLDER_COLUMN).text() == ""
    # Refused as the settings file refuses it, next to the servers.
    dialog.set_voice_folder(0, "voices")
    click_save(qtbot, dialog)
    message = dialog.errors["backends"].text()
    assert message == f"Row 1: The voice folder of {url} must be an absolute path, not 'voices'."
    assert dialog.isVisible()

    dialog.set_voice_folder(0, str(folder))
    click_save(qtbot, dialog)
    qtbot.waitUntil(lambda: shell.settings_dialog is None, timeout=WAIT_MS)
    backends = saved_file(shell)["backends"]
    assert isinstance(backends, list) and backends[0]["voice_dir"] == str(folder)
    # The gateway restarts with it: the server's voices are stored there now.
    qtbot.waitUntil(
        lambda: (
            running(shell)
            and [(f.backend, f.writable) for f in shell.services.server.voice_libraries()]
            == [("gpu", True)]
        ),
        timeout=WAIT_MS,
    )
    # Shown again when the dialog reopens, and cleared as easily.
    dialog = open_dialog(shell)
    assert cell(dialog.backends_table, 0, FOLDER_COLUMN).text() == str(folder)
    dialog.set_voice_folder(0, "")
    click_save(qtbot, dialog)
    qtbot.waitUntil(lambda: shell.settings_dialog is None, timeout=WAIT_MS)
    backends = saved_file(shell)["backends"]
    assert isinstance(backends, list) and "voice_dir" not in backends[0]
    qtbot.waitUntil(
        lambda: (
            running(shell)
            and [(f.backend, f.writable) for f in shell.services.server.voice_libraries()]
            == [("gpu", False)]
        ),
        timeout=WAIT_MS,
    )
