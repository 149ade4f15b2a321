"""The real app on a real gateway (port 0) with the real demo backend, SQLite and settings file.

``launch()`` builds the app exactly as ``pplex-desktop`` does (app.open_services + DesktopShell)
and every app it made is quit gracefully after the test, so no thread outlives its test.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem
from pytestqt.qtbot import QtBot

from pplex_desktop.app import Options, open_services
from pplex_desktop.core.settings import Settings, save_settings
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.pages import PageRegistry
from pplex_desktop.ui.shell import DesktopShell, Services

ADMIN_SECRET = "gui-test-admin-secret-0123456789"
WAIT_MS = 15_000
Launch = Callable[..., DesktopShell]
# Loopback only: never through a proxy the environment may configure.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    url: str, *, key: str | None = None, method: str = "GET", ca_file: Path | None = None
) -> tuple[int, dict[str, Any]]:
    """A blocking request from the test (the gateway answers on its own thread)."""
    request = urllib.request.Request(url, method=method)
    if key is not None:
        request.add_header("X-API-Key", key)
    opener = _OPENER
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    """A table cell that must be there (Qt answers None for an empty one)."""
    item = table.item(row, column)
    assert item is not None, f"no item at row {row}, column {column}"
    return item


@pytest.fixture(autouse=True)
def qasync_loop_policy() -> Iterator[None]:
    """The event-loop set-up of ``main()``: on Python < 3.12 ``qasync.run()`` installs its policy
    for the whole process, so any thread that asks the policy for a loop gets a Qt loop. Every
    GUI test runs under it, so a loop thread that forgets to make its own loop fails here."""
    policy_class = getattr(qasync, "DefaultQEventLoopPolicy", None)
    if policy_class is None:  # Python 3.12+: qasync.run() passes a loop factory instead.
        yield
        return
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(policy_class())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.fixture(autouse=True)
def ui_state_dir(tmp_path: Path) -> Path:
    """QSettings in a temporary folder, never the real one (the window's own state lives in
    the data folder, ui-state.json, so nothing should land here)."""
    path = tmp_path / "qsettings"
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))
    return path


def running(shell: DesktopShell) -> bool:
    return shell.gateway.view.state is GatewayState.RUNNING


@pytest.fixture
def launch(
    qtbot: QtBot, _isolated_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Launch]:
    shells: list[DesktopShell] = []

    def start(
        *,
        demo: bool = True,
        port: int | None = 0,
        first_launch: bool = False,
        settings: Settings | None = None,
        data_dir: Path | None = None,
        wait: bool = True,
        pages: PageRegistry | None = None,
    ) -> DesktopShell:
        folder = data_dir or _isolated_data_dir
        if first_launch:
            monkeypatch.delenv("PPLEX_ADMIN_SECRET", raising=False)
        else:
            monkeypatch.setenv("PPLEX_ADMIN_SECRET", ADMIN_SECRET)
        if settings is not None:
            save_settings(folder, settings)
        services: Services = open_services(Options(data_dir=folder, demo=demo, port=port))
        services.pages = pages
        shell = DesktopShell(services)
        shells.append(shell)
        shell.launch()
        if wait:
            qtbot.waitUntil(lambda: running(shell), timeout=WAIT_MS)
        return shell

    yield start
    for shell in shells:
        quit_gracefully(qtbot, shell)


def quit_gracefully(qtbot: QtBot, shell: DesktopShell) -> None:
    if shell.quitting:
        if not shell.services.server.thread.running:
            return
        qtbot.waitUntil(lambda: not shell.services.server.thread.running, timeout=WAIT_MS)
        return
    with qtbot.waitSignal(shell.finished, timeout=WAIT_MS):
        shell.quit()
    assert not shell.services.server.thread.running


def url_of(shell: DesktopShell) -> str:
    url = shell.gateway.view.url
    assert url is not None
    return url
