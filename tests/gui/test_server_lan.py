"""Serving the network, as the server page tells it: a question before live calls drop, the
figures across restarts, the address the log and the page name, a curl that works as copied,
and what a stopped gateway will listen on. Every socket here is on loopback."""

from __future__ import annotations

import html
import ipaddress
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.settings import Settings
from pplex_desktop.desktop.settings_store import SettingsStore
from pplex_desktop.gateway.server import GatewayAddress, GatewayState, network_urls
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.ui.server.server_panel import ServerPanel, will_listen_text
from pplex_desktop.ui.shell import DesktopShell
from tests.gui.conftest import WAIT_MS, Launch, running, url_of

LOOPBACK_LAN = Settings(lan_port=0, lan_host="127.0.0.1")


def server_page(shell: DesktopShell) -> ServerPanel:
    page = shell.window.show_page("server")
    assert isinstance(page, ServerPanel)
    return page


@pytest.fixture
def client() -> Iterator[LoopThread]:
    thread = LoopThread("test-client")
    thread.start()
    yield thread
    thread.stop()


def served(panel: ServerPanel) -> str:
    item = panel.backends_table.item(0, 3)
    return item.text() if item is not None else ""


def test_serving_the_network_with_a_live_call_asks_first_and_keeps_the_figures(
    qtbot: QtBot, launch: Launch, client: LoopThread
) -> None:
    shell = launch(settings=LOOPBACK_LAN)
    panel = server_page(shell)
    session = client.run(
        MoshiSession.connect(url_of(shell), SessionOptions(api_key=shell.context.owner_key)),
        timeout=20,
    )
    qtbot.waitUntil(lambda: shell.counters.counts.active_sessions == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: served(panel) == "1", timeout=WAIT_MS)

    panel.lan_switch.setChecked(True)
    box = panel.lan_confirm
    assert box is not None and "ends 1 live conversation" in box.text()
    box.button(box.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: panel.lan_confirm is None, timeout=WAIT_MS)
    assert not panel.lan_switch.isChecked()
    assert running(shell) and shell.gateway.view.lan_address is None
    assert SettingsStore(shell.services.data_dir).file.serve_lan is False
    assert shell.counters.counts.active_sessions == 1, "the call goes on"

    panel.lan_switch.setChecked(True)
    box = panel.lan_confirm
    assert box is not None
    panel.lan_restart_button.click()
    qtbot.waitUntil(
        lambda: running(shell) and shell.gateway.view.lan_address is not None, timeout=WAIT_MS
    )
    assert panel.lan_switch.isChecked()
    client.run(session.close(), timeout=10)
    # The conversation served before the restart still counts after it.
    qtbot.waitUntil(lambda: served(panel) == "1", timeout=WAIT_MS)
    assert shell.services.server.runner is not None

    # No live call, no question.
    qtbot.waitUntil(lambda: shell.counters.counts.active_sessions == 0, timeout=WAIT_MS)
    panel.lan_switch.setChecked(False)
    assert panel.lan_confirm is None
    qtbot.waitUntil(
        lambda: running(shell) and shell.gateway.view.lan_address is None, timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: served(panel) == "1", timeout=WAIT_MS)


def pre_lines(text: str) -> list[str]:
    found = re.search(r"<pre>(.*)</pre>", text, re.DOTALL)
    assert found is not None, text
    return html.unescape(found.group(1)).splitlines()


def test_the_page_the_log_and_the_curl_name_the_network_address(
    qtbot: QtBot, launch: Launch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pplex_desktop.gateway.server")
    shell = launch(settings=LOOPBACK_LAN.replace(serve_lan=True))
    panel = server_page(shell)
    qtbot.waitUntil(lambda: shell.gateway.view.lan_address is not None, timeout=WAIT_MS)
    lan = shell.gateway.view.lan_address
    assert lan is not None
    site = f"https://127.0.0.1:{lan.port}"
    assert panel.lan_urls == [site]
    logged = [r.getMessage() for r in caplog.records if "serves the network" in r.getMessage()]
    assert logged and site in logged[-1]

    local, network = pre_lines(panel.clients_label.text())
    assert url_of(shell) in local and site in network
    tls = shell.gateway.view.tls
    assert tls is not None and tls.ca_path is not None
    assert f"--cacert {shlex.quote(str(tls.ca_path))}" in network
    # As copied, with a real key: curl trusts the site through the CA it is told of.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    for command in (local, network):
        args = shlex.split(command.replace("YOUR_KEY", shell.context.owner_key))
        done = subprocess.run(
            [*args, "-sS", "-o", os.devnull, "-w", "%{http_code}"],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=False,
        )
        assert done.stdout == "200", done.stderr

    # The fingerprint stands alone: no full stop glued to its last byte.
    shown = re.sub(r"<[^>]+>", " ", panel.tls_label.text()).split()
    assert shown[-1] == tls.fingerprint_sha256[-23:]  # its last eight bytes, as grouped


def test_a_wildcard_listener_is_logged_by_its_network_addresses() -> None:
    ips = [ipaddress.ip_address("192.0.2.7"), ipaddress.ip_address("2001:db8::7")]
    every_v4 = GatewayAddress("0.0.0.0", 8443, True)
    assert network_urls(every_v4, ips) == ["https://192.0.2.7:8443"]
    every = GatewayAddress("::", 8443, True)
    assert network_urls(every, ips) == ["https://192.0.2.7:8443", "https://[2001:db8::7]:8443"]
    # With no network at all, the loopback URL is all there is to say.
    assert network_urls(every_v4, []) == ["https://127.0.0.1:8443"]
    assert network_urls(GatewayAddress("192.0.2.9", 9443, True), ips) == ["https://192.0.2.9:9443"]


def test_a_stopped_gateway_says_where_it_will_listen_and_pauses_its_figures(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch(settings=LOOPBACK_LAN.replace(serve_lan=True))
    panel = server_page(shell)
    assert not panel.figures_note.isVisible()
    shell.counters.set_active_sessions(1)
    assert panel.sessions_figure.value.text() == "1"
    shell.gateway.stop()
    qtbot.waitUntil(lambda: shell.gateway.view.state is GatewayState.STOPPED, timeout=WAIT_MS)
    text = panel.address_label.text()
    assert text == (
        "Will listen on 127.0.0.1, a free port, for this computer, and over HTTPS on "
        "127.0.0.1, a free port, for your network"
    )
    assert "every network interface" not in text
    # No figure stands as if live: the count of conversations goes, a note says why.
    qtbot.waitUntil(lambda: panel.sessions_figure.value.text() == "–", timeout=WAIT_MS)
    assert panel.figures_note.isVisible()
    shell.gateway.start()
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    assert not panel.figures_note.isVisible()


def test_where_a_stopped_gateway_will_listen() -> None:
    lan = Settings(serve_lan=True)
    assert will_listen_text(lan) == (
        "Will listen on 127.0.0.1, port 8000, for this computer, and over HTTPS on every "
        "network interface, port 8443, for your network"
    )
    # Plain HTTP never leaves this computer while the network is served over HTTPS.
    assert will_listen_text(lan.replace(host="0.0.0.0")) == will_listen_text(lan)
    assert (
        will_listen_text(Settings())
        == "Will listen on 127.0.0.1, port 8000, for this computer only"
    )
    assert will_listen_text(Settings(host="0.0.0.0")) == (
        "Will listen on every network interface, port 8000, over plain HTTP"
    )
