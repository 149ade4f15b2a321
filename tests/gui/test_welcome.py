"""First launch: the admin secret is shown once, the model server is tested, and the demo is
offered when nothing answers; the second launch goes straight to work."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import cast

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.desktop.backend_probe import ProbeResult
from pplex_desktop.desktop.settings_store import SettingsStore
from pplex_desktop.gateway.server import DEMO_LABEL
from pplex_desktop.sim.sim import SimServer
from pplex_desktop.ui.settings.welcome import WelcomeDialog
from tests.gui.conftest import WAIT_MS, Launch, http, quit_gracefully, running, url_of


@pytest.fixture
def dead_port() -> Iterator[int]:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield closed.getsockname()[1]


@pytest.fixture
def sim() -> Iterator[SimServer]:
    thread = LoopThread("test-sim")
    thread.start()
    server = SimServer()
    thread.run(server.start("127.0.0.1", 0), 10)
    yield server
    thread.run(server.stop(), 10)
    thread.stop()


def welcome_of(qtbot: QtBot, shell: object) -> WelcomeDialog:
    qtbot.waitUntil(lambda: shell.welcome is not None, timeout=WAIT_MS)  # type: ignore[attr-defined]
    dialog = shell.welcome  # type: ignore[attr-defined]
    assert isinstance(dialog, WelcomeDialog) and dialog.isVisible()
    return dialog


def test_first_launch_shows_the_secret_once_and_offers_the_demo(
    qtbot: QtBot, launch: Launch, dead_port: int
) -> None:
    unreachable = Settings(backends=(BackendConfig(f"ws://127.0.0.1:{dead_port}"),))
    shell = launch(demo=False, first_launch=True, settings=unreachable, wait=False)
    dialog = welcome_of(qtbot, shell)
    assert dialog.secret_edit is not None
    secret = dialog.secret_edit.text()
    store = shell.services.keystore
    assert secret.startswith("pplxadmin_") and store.check_admin_secret(secret)
    assert shell.services.admin_secret is None  # nothing but the dialog holds it now
    assert shell.gateway.view.url is None  # the gateway waits for the user's choice

    qtbot.waitUntil(lambda: dialog.last_probe is not None, timeout=WAIT_MS)
    assert not dialog.last_probe.reachable  # type: ignore[union-attr]
    assert "demo backend (demo: echoes your voice)" in dialog.result_label.text()
    assert dialog.demo_button.isDefault()
    qtbot.mouseClick(dialog.demo_button, Qt.MouseButton.LeftButton)
    assert dialog.secret_edit.text() == ""
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    assert shell.gateway.view.demo
    assert SettingsStore(shell.services.data_dir).file.demo is True
    assert http(url_of(shell) + "/healthz")[1]["status"] == "ok"
    folder = shell.services.data_dir
    quit_gracefully(qtbot, shell)

    # Running at all proves no welcome: with one, the gateway waits for the user's choice.
    again = launch(demo=False, first_launch=True, data_dir=folder)
    assert again.welcome is None
    assert again.gateway.view.demo  # the choice was kept
    assert again.services.keystore.check_admin_secret(secret)


def test_closing_the_welcome_still_starts_usefully(
    qtbot: QtBot, launch: Launch, dead_port: int
) -> None:
    unreachable = Settings(backends=(BackendConfig(f"ws://127.0.0.1:{dead_port}"),))
    shell = launch(demo=False, first_launch=True, settings=unreachable, wait=False)
    dialog = welcome_of(qtbot, shell)
    dialog.reject()
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    assert shell.gateway.view.demo


def test_first_launch_with_a_model_server_that_answers(
    qtbot: QtBot, launch: Launch, sim: SimServer
) -> None:
    shell = launch(demo=False, first_launch=True, wait=False)
    dialog = welcome_of(qtbot, shell)
    assert sim.url is not None
    dialog.url_edit.setText(sim.url)
    dialog.handshake_check.setChecked(True)
    qtbot.waitUntil(dialog.test_button.isEnabled, timeout=WAIT_MS)
    dialog.last_probe = None
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.last_probe is not None, timeout=WAIT_MS)
    probe = cast(ProbeResult | None, dialog.last_probe)  # set by the click, not by the test
    assert probe is not None and probe.handshake is True
    # The handshake used the default persona and voice, as a PersonaPlex server requires.
    query = sim.stats.queries[-1]
    assert query["voice_prompt"] == "NATF2.pt" and query["text_prompt"]
    qtbot.mouseClick(dialog.server_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    assert not shell.gateway.view.demo
    port = sim.url.rsplit(":", 1)[1]
    assert shell.settings.current.backends[0].url == f"ws://127.0.0.1:{port}"
    qtbot.waitUntil(lambda: [s.healthy for s in shell.counters.backends] == [True], timeout=WAIT_MS)


def test_the_admin_secret_from_the_environment_skips_the_welcome(launch: Launch) -> None:
    shell = launch()
    assert shell.welcome is None
    store: KeyStore = shell.services.keystore
    assert store.check_admin_secret("gui-test-admin-secret-0123456789")


def clipped_labels(dialog: WelcomeDialog) -> list[str]:
    """Visible wrapped labels shorter than their text needs at their width."""
    return [
        item.text()
        for item in dialog.findChildren(QLabel)
        if item.isVisible()
        and item.wordWrap()
        and item.text()
        and item.height() < item.heightForWidth(item.width())
    ]


def test_with_demo_the_welcome_says_so_and_tests_nothing(qtbot: QtBot, launch: Launch) -> None:
    shell = launch(demo=True, first_launch=True, wait=False)
    dialog = welcome_of(qtbot, shell)
    text = dialog.result_label.text()
    assert "demo backend" in text and DEMO_LABEL in text
    assert "Nothing answers" not in text and dialog.result_label.property("role") != "error"
    assert dialog.last_probe is None and dialog.test_button.isEnabled()
    assert dialog.demo_button.isDefault()
    qtbot.mouseClick(dialog.demo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    assert shell.gateway.view.demo


def test_a_failed_test_is_a_sentence_in_a_layout_that_holds(
    qtbot: QtBot, launch: Launch, dead_port: int
) -> None:
    unreachable = Settings(backends=(BackendConfig(f"ws://127.0.0.1:{dead_port}"),))
    shell = launch(demo=False, first_launch=True, settings=unreachable, wait=False)
    dialog = welcome_of(qtbot, shell)
    qtbot.waitUntil(lambda: dialog.last_probe is not None, timeout=WAIT_MS)
    text = dialog.result_label.text()
    assert text.startswith(
        f"Nothing answers at ws://127.0.0.1:{dead_port}. Is the model server running?"
    )
    assert "Connect call failed" not in text and "(" + "'" not in text
    assert clipped_labels(dialog) == []
    # Widened by the user, then other results, short then long again: it neither shrinks
    # back nor clips.
    dialog.resize(dialog.width() + 200, dialog.height() + 80)
    qtbot.waitUntil(lambda: dialog.width() > 700, timeout=WAIT_MS)
    size = dialog.size()
    for url in ("", f"ws://127.0.0.1:{dead_port}"):
        dialog.last_probe = None
        dialog.url_edit.setText(url)
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.last_probe is not None, timeout=WAIT_MS)
        qtbot.wait(50)  # one round of layout
        assert clipped_labels(dialog) == []
        assert dialog.height() >= size.height() and dialog.width() >= size.width()


def test_closing_the_welcome_while_it_tests_is_quiet(qtbot: QtBot, launch: Launch) -> None:
    """The test's answer arrives after the dialog is gone: it must touch none of its widgets."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections wait in the backlog, never answered
        port = silent.getsockname()[1]
        settings = Settings(backends=(BackendConfig(f"ws://127.0.0.1:{port}"),))
        shell = launch(demo=False, first_launch=True, settings=settings, wait=False)
        dialog = welcome_of(qtbot, shell)
        future = dialog.probe_future
        assert future is not None and not future.done()
        dialog.reject()
    # The listener closed: the waiting test ends at once, with the dialog already gone.
    qtbot.waitUntil(future.done, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
    qtbot.wait(100)  # the answer's callback is queued on the Qt thread; let it run
    assert dialog.last_probe is None
