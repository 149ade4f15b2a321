"""``pplex-desktop``: the composition root.

Opens the settings, the key store and the gateway (on its own thread), replaces the app's own
owner key, shows the window at once and lets the gateway start behind it; quitting stops the
gateway gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.keystore import KIND_OWNER, KeyStore
from pplex_desktop.core.paths import data_dir

if TYPE_CHECKING:
    from pplex_desktop.ui.shell import Services

_log = logging.getLogger("pplex_desktop.app")
ADMIN_SECRET_ENV = "PPLEX_ADMIN_SECRET"  # noqa: S105 (a variable name, not a secret)
# For bench/startup.py: print when the window is shown, then quit.
EXIT_WHEN_SHOWN_ENV = "PPLEX_DESKTOP_EXIT_WHEN_SHOWN"
OWNER_KEY_NAME = "pplex-desktop (this app)"
# The desktop user is one more client of the gateway, but one that a person drives directly:
# generous enough never to trip on its own REST calls, still limited like everyone else.
OWNER_RPM = 600
OWNER_MAX_SESSIONS = 2


@dataclass(frozen=True)
class Options:
    data_dir: Path | None = None
    demo: bool = False
    port: int | None = None
    log_level: str = "INFO"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pplex-desktop",
        description="Desktop companion and secure gateway for PersonaPlex / Moshi servers.",
    )
    p.add_argument("--data-dir", type=Path, help="folder for keys, jobs and settings")
    p.add_argument(
        "--demo",
        action="store_true",
        help="serve the built-in demo backend (demo: echoes your voice) for this run",
    )
    p.add_argument("--port", type=int, help="gateway port for this run (0 for any free port)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return p


def open_services(options: Options) -> Services:
    """Settings, key store, owner key and the (not yet started) gateway; no window yet."""
    # Imported here so a bad command line fails fast without loading Qt.
    from pplex_desktop.gateway.server import GatewayServer
    from pplex_desktop.gateway.tls import TLS_FOLDER
    from pplex_desktop.ui.settings_store import SettingsStore
    from pplex_desktop.ui.shell import Services

    folder = data_dir(options.data_dir)
    overrides: dict[str, object] = {}
    if options.demo:
        overrides["demo"] = True
    if options.port is not None:
        overrides["port"] = options.port
    settings = SettingsStore(folder, overrides)
    effective = settings.effective
    keystore = KeyStore.in_folder(
        folder,
        default_rpm=effective.default_rpm,
        default_max_sessions=effective.default_max_sessions,
    )
    explicit = os.environ.get(ADMIN_SECRET_ENV)
    if explicit:
        keystore.set_admin_secret(explicit)
        admin_secret = None
    elif keystore.setup_finished():
        admin_secret = None
    else:
        # Until a person completes the welcome it shows again, with a fresh secret that works:
        # one shown by a welcome that was quit is lost with that window.
        admin_secret = keystore.begin_setup()
    # Last run's owner key goes: a key that only lived in that process's memory is dead weight.
    keystore.delete_kind(KIND_OWNER)
    owner = keystore.create(
        OWNER_KEY_NAME, kind=KIND_OWNER, rpm=OWNER_RPM, max_sessions=OWNER_MAX_SESSIONS
    )
    server = GatewayServer(effective, keystore, tls_folder=folder / TLS_FOLDER)
    return Services(
        data_dir=folder,
        settings=settings,
        keystore=keystore,
        server=server,
        owner_key=owner.key,
        admin_secret=admin_secret,
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pplex_desktop").setLevel(level.upper())


def _quit_on_signals(loop: asyncio.AbstractEventLoop, quit_app: Callable[[], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, quit_app)
        except (NotImplementedError, RuntimeError):
            with contextlib.suppress(ValueError):
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(quit_app))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    options = Options(args.data_dir, args.demo, args.port, args.log_level)

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from pplex_desktop.ui.look import apply_look
    from pplex_desktop.ui.shell import DesktopShell
    from pplex_desktop.ui.ui_state import APPLICATION, ORGANIZATION

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setDesktopFileName(APPLICATION)
    app.setQuitOnLastWindowClosed(False)  # the tray may keep the app alive
    apply_look(app)
    try:
        services = open_services(options)
    except PplexError as exc:
        print(f"pplex-desktop: {exc.message}", file=sys.stderr)
        return 2
    shell = DesktopShell(services)

    async def run() -> None:
        done = asyncio.Event()
        shell.finished.connect(done.set)
        _quit_on_signals(asyncio.get_running_loop(), shell.quit)
        shell.launch()
        if os.environ.get(EXIT_WHEN_SHOWN_ENV):

            def shown() -> None:
                print(f"pplex-desktop shown at {time.time():.6f}", flush=True)
                shell.quit()

            QTimer.singleShot(0, shown)
        await done.wait()

    qasync.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
