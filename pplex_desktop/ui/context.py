"""What every page gets: the services of the running app, built once by app.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.gateway.server import GatewayServer
from pplex_desktop.ui.activity.log_handler import QtLogHandler
from pplex_desktop.ui.bridge import GatewayBridge, IoBridge
from pplex_desktop.ui.errors import ErrorReporter
from pplex_desktop.ui.server.counters import LiveCounters
from pplex_desktop.ui.server.gateway_control import GatewayController
from pplex_desktop.ui.settings.settings_keeper import SettingsKeeper
from pplex_desktop.ui.status import StatusLine


@dataclass(frozen=True)
class DesktopContext:
    """Shared by the main window and every page; Qt-thread use only.

    ``owner_key`` is the app's own API key (kind "owner", replaced at every start and never
    stored in plain text): pages connect to ``gateway_url()`` with it over loopback, as one more
    client of the gateway with the same queue and limits as everyone.
    """

    data_dir: Path
    server: GatewayServer
    keystore: KeyStore
    bridge: GatewayBridge  # the gateway's events, and what only its loop may read
    io: IoBridge  # the desktop's own work: HTTP on its loop, disk in its thread
    gateway: GatewayController
    settings: SettingsKeeper
    counters: LiveCounters
    errors: ErrorReporter
    log_handler: QtLogHandler
    status: StatusLine  # short messages for the status bar
    owner_key: str

    def gateway_url(self) -> str | None:
        """The running gateway's loopback URL, or None while it is not serving."""
        return self.gateway.view.url
