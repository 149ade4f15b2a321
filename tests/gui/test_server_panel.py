"""The server page: state, start/stop, LAN serving with its URL and QR code, start failures,
the model servers and the live figures."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from pplex_desktop.desktop.lan import lan_addresses
from pplex_desktop.desktop.settings_store import SettingsStore
from pplex_desktop.gateway.server import DEMO_LABEL, GatewayState
from pplex_desktop.ui.server.server_panel import ServerPanel
from tests.gui.conftest import WAIT_MS, Launch, cell, http, running, url_of
from tests.journeys.http import https_via_loopback


def server_page(shell: object) -> ServerPanel:
    page = shell.window.show_page("server")  # type: ignore[attr-defined]
    assert isinstance(page, ServerPanel)
    return page


def test_running_on_the_demo_backend(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = server_page(shell)
    assert panel.state_label.text() == "Running"
    assert url_of(shell) in panel.address_label.text()
    assert panel.demo_badge.isVisible() and DEMO_LABEL in panel.demo_badge.text()
    assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    qtbot.waitUntil(
        lambda: (
            panel.backends_table.rowCount() == 1
            and cell(panel.backends_table, 0, 1).text() == "answering"
        ),
        timeout=WAIT_MS,
    )
    assert cell(panel.backends_table, 0, 0).text() == DEMO_LABEL
    assert cell(panel.backends_table, 0, 2).text() == "idle"
    assert not panel.use_demo_button.isVisible()


def test_stop_and_start(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = server_page(shell)
    url = url_of(shell)
    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: shell.gateway.view.state is GatewayState.STOPPED, timeout=WAIT_MS)
    assert panel.state_label.text() == "Stopped"
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    with pytest.raises(OSError):
        http(url + "/healthz")
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    assert http(url_of(shell) + "/healthz")[0] == 200


def test_restart_keeps_serving(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = server_page(shell)
    states: list[GatewayState] = []
    shell.gateway.changed.connect(lambda view: states.append(view.state))
    qtbot.mouseClick(panel.restart_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: states[-1:] == [GatewayState.RUNNING], timeout=WAIT_MS)
    assert states == [
        GatewayState.STOPPING,
        GatewayState.STOPPED,
        GatewayState.STARTING,
        GatewayState.RUNNING,
    ]
    assert http(url_of(shell) + "/healthz")[0] == 200


def test_serving_the_local_network_and_back(qtbot: QtBot, launch: Launch) -> None:
    from pplex_desktop.core.settings import Settings
    from pplex_desktop.gateway.lan.tls import CA_CERT, TLS_FOLDER

    shell = launch(settings=Settings(lan_port=0))
    panel = server_page(shell)
    assert not panel.lan_switch.isChecked()
    assert shell.gateway.view.address is not None
    assert shell.gateway.view.address.host == "127.0.0.1"
    assert not panel.pair_button.isEnabled()

    panel.lan_switch.setChecked(True)
    qtbot.waitUntil(
        lambda: running(shell) and shell.gateway.view.lan_address is not None, timeout=WAIT_MS
    )
    view = shell.gateway.view
    assert view.address is not None and view.address.host == "127.0.0.1", "HTTP stays local"
    assert view.lan_address is not None and view.lan_address.tls
    assert view.tls is not None
    shown = panel.tls_label.text().replace(" ", ":")
    assert view.tls.fingerprint_sha256 in shown
    ca_file = shell.services.data_dir / TLS_FOLDER / CA_CERT
    found = lan_addresses()
    if found:
        expected = f"https://{found[0].ip}:{view.lan_address.port}"
        assert panel.lan_urls[0] == expected
        assert expected in panel.lan_label.text()
        pixmap = panel.qr_label.pixmap()
        assert not pixmap.isNull() and pixmap.width() > 100
        # The LAN URL really reaches the gateway, over HTTPS trusted through our own CA (asked
        # as a phone would, but over loopback: tests never send to an interface address).
        assert https_via_loopback(expected + "/healthz", ca_file=ca_file)[0] == 200
        assert panel.pair_button.isEnabled()
    else:
        assert "No network interface" in panel.lan_label.text()
    assert SettingsStore(shell.services.data_dir).file.serve_lan is True

    panel.lan_switch.setChecked(False)
    qtbot.waitUntil(
        lambda: running(shell) and shell.gateway.view.lan_address is None, timeout=WAIT_MS
    )
    assert panel.lan_urls == []
    assert panel.qr_label.pixmap().isNull()
    assert not panel.pair_button.isEnabled()
    assert SettingsStore(shell.services.data_dir).file.serve_lan is False


def test_pairing_a_device(qtbot: QtBot, launch: Launch) -> None:
    from pplex_desktop.core.keystore import KIND_PAIRED
    from pplex_desktop.core.settings import Settings

    # The network site on loopback: the page offers that very address, nothing else.
    shell = launch(settings=Settings(lan_port=0, lan_host="127.0.0.1", serve_lan=True))
    panel = server_page(shell)
    qtbot.waitUntil(lambda: shell.gateway.view.lan_address is not None, timeout=WAIT_MS)
    lan = shell.gateway.view.lan_address
    assert lan is not None and panel.lan_urls == [f"https://127.0.0.1:{lan.port}"]
    qtbot.mouseClick(panel.pair_button, Qt.MouseButton.LeftButton)
    dialog = panel.pair_dialog
    assert dialog is not None
    durations = [dialog.duration_combo.itemText(i) for i in range(dialog.duration_combo.count())]
    assert durations[0] == "30 minutes" and "2 hours" in durations and "7 days" in durations
    assert dialog.duration_combo.currentText() == "12 hours"
    dialog.name_edit.setText("Sam's phone")
    dialog.rpm_spin.setValue(30)
    dialog.duration_combo.setCurrentText("2 hours")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.pairing is not None, timeout=WAIT_MS)
    pairing = dialog.pairing
    assert pairing is not None
    assert pairing.url.startswith(panel.lan_urls[0] + "/#key=pplx_")
    assert not dialog.code_label.pixmap().isNull()
    (paired,) = [k for k in shell.services.keystore.list_keys() if k.kind == KIND_PAIRED]
    assert (paired.name, paired.rpm) == ("Sam's phone", 30)
    assert paired.expires_at is not None
    assert abs(paired.expires_at - paired.created_at - 7200) < 5
    assert "The key works for 2 hours, until " in dialog.expiry_label.text()
    # The key works like any other, and the code is forgotten when the dialog closes.
    assert http(url_of(shell) + "/v1/info", key=pairing.key)[0] == 200
    dialog.accept()
    assert dialog.pairing is None and dialog.url_label.text() == ""


def test_saving_the_ca_certificate(
    qtbot: QtBot, launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pplex_desktop.core.settings import Settings

    shell = launch(settings=Settings(lan_port=0, lan_host="127.0.0.1", serve_lan=True))
    panel = server_page(shell)
    qtbot.waitUntil(lambda: shell.gateway.view.lan_address is not None, timeout=WAIT_MS)
    tls = shell.gateway.view.tls
    assert tls is not None and tls.ca_der is not None and panel.save_ca_button.isEnabled()
    target = tmp_path / "pplex-ca.crt"
    answers = iter([str(target), str(tmp_path / "no such folder" / "pplex-ca.crt")])
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *_args: (next(answers), "Certificates")
    )
    status = shell.window.statusBar()
    qtbot.mouseClick(panel.save_ca_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "was saved" in status.currentMessage(), timeout=WAIT_MS)
    assert status.currentMessage() == f"The CA certificate was saved to {target}."
    assert target.read_bytes() == tls.ca_der
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pplex-ca.crt"], "no temporary left"
    qtbot.mouseClick(panel.save_ca_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "could not be written" in status.currentMessage(), timeout=WAIT_MS)
    assert status.currentMessage().startswith(
        "The file pplex-ca.crt could not be written (No such file or directory)"
    )
    assert shell.errors.dialog is None, "a sentence, not an unexpected-error dialog"


def test_a_port_in_use_is_shown_as_a_sentence(qtbot: QtBot, launch: Launch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        shell = launch(port=port, wait=False)
        qtbot.waitUntil(lambda: shell.gateway.view.state is GatewayState.FAILED, timeout=WAIT_MS)
        panel = server_page(shell)
        text = panel.failure_label.text()
        assert f"Port {port} on 127.0.0.1 is already in use by another program" in text
        assert "choose another port" in text
        assert panel.failure_label.isVisible()
        assert panel.state_label.text().startswith("Not running")
        assert panel.start_button.isEnabled()
        assert shell.window.statusBar().currentMessage() == text


def test_an_unreachable_model_server_offers_the_demo(qtbot: QtBot, launch: Launch) -> None:
    from pplex_desktop.core.settings import BackendConfig, Settings

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # bound, never listening: connections are refused
        shell = launch(
            demo=False, settings=Settings(backends=(BackendConfig(f"ws://127.0.0.1:{dead}"),))
        )
        panel = server_page(shell)
        qtbot.waitUntil(panel.use_demo_button.isVisible, timeout=WAIT_MS)
        assert "No model server answers" in panel.no_backend_label.text()
        assert cell(panel.backends_table, 0, 1).text() == "unreachable"
        qtbot.mouseClick(panel.use_demo_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: running(shell) and shell.gateway.view.demo, timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: (
                panel.backends_table.rowCount() == 1
                and cell(panel.backends_table, 0, 0).text() == DEMO_LABEL
            ),
            timeout=WAIT_MS,
        )
        assert SettingsStore(shell.services.data_dir).file.demo is True


def test_requests_per_minute_counts_served_requests(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = server_page(shell)
    for _ in range(3):
        assert http(url_of(shell) + "/healthz")[0] == 200
    qtbot.waitUntil(lambda: shell.counters.counts.requests_per_min >= 3, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: int(panel.rpm_figure.value.text()) >= 3, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: shell.counters.counts.active_sessions == 0, timeout=WAIT_MS)
    assert panel.sessions_figure.value.text() == "0"
    shell.counters.set_active_sessions(2)  # the slot the live-session work reports to
    assert panel.sessions_figure.value.text() == "2"


def test_a_live_session_shows_as_active(qtbot: QtBot, launch: Launch) -> None:
    """A real conversation through the gateway moves the figure and the backend row."""
    from pplex_desktop.core.loop_thread import LoopThread
    from pplex_desktop.moshi.client import MoshiSession, SessionOptions

    shell = launch()
    panel = server_page(shell)
    client = LoopThread("test-client")
    client.start()
    try:
        session = client.run(
            MoshiSession.connect(url_of(shell), SessionOptions(api_key=shell.context.owner_key)),
            timeout=20,
        )
        qtbot.waitUntil(lambda: shell.counters.counts.active_sessions == 1, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: panel.sessions_figure.value.text() == "1", timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: cell(panel.backends_table, 0, 2).text() == "in a conversation",
            timeout=WAIT_MS,
        )
        client.run(session.close(), timeout=10)
        qtbot.waitUntil(lambda: shell.counters.counts.active_sessions == 0, timeout=WAIT_MS)
    finally:
        client.stop()
