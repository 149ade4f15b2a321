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

from pplex_desktop.core.admin_secret import use_env_admin_secret
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.folder_lock import FolderInUseError, FolderLock, lock_folder
from pplex_desktop.core.keystore import KIND_OWNER, KeyStore
from pplex_desktop.core.paths import data_dir

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from pplex_desktop.ui.shell import DesktopShell, Services
    from pplex_desktop.ui.single_instance import InstanceServer

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
    # The Qt-side modules are imported in _open_locked, so a bad command line or a folder in
    # use fails fast without loading Qt.
    folder = data_dir(options.data_dir)
    # Before anything reads the folder: a second instance would delete the first one's owner
    # key, clean up its upload spool and re-run its jobs. Released when the shell finishes.
    lock = lock_folder(folder, "pplex-desktop")
    try:
        return _open_locked(options, folder, lock)
    except BaseException:
        lock.release()
        raise


def _open_locked(options: Options, folder: Path, lock: FolderLock) -> Services:
    from pplex_desktop.desktop.settings_store import SettingsStore
    from pplex_desktop.gateway.lan.tls import TLS_FOLDER
    from pplex_desktop.gateway.server import GatewayServer
    from pplex_desktop.ui.shell import Services

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
    if use_env_admin_secret(keystore) or keystore.setup_finished():
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
        folder_lock=lock,
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


def _refuse_to_start(app: QApplication, message: str) -> None:
    """Say why on stderr, and in a message box for someone who started it from a menu."""
    print(f"pplex-desktop: {message}", file=sys.stderr, flush=True)
    # Nobody could see or close a box on the offscreen platforms that tests and scripts use.
    if app.platformName() in ("offscreen", "minimal"):
        return
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.critical(None, "pplex-desktop cannot start", message)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    options = Options(args.data_dir, args.demo, args.port, args.log_level)

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from pplex_desktop.desktop.ui_state import APPLICATION, ORGANIZATION
    from pplex_desktop.ui.look import apply_look
    from pplex_desktop.ui.shell import DesktopShell

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setDesktopFileName(APPLICATION)
    app.setQuitOnLastWindowClosed(False)  # the tray may keep the app alive
    apply_look(app)
    try:
        services = open_services(options)
    except FolderInUseError as exc:
        from pplex_desktop.ui.single_instance import ask_running_to_show

        if ask_running_to_show(data_dir(options.data_dir)):
            print(
                "pplex-desktop is already running on this data folder; its window was brought "
                "forward.",
                flush=True,
            )
            return 0
        _refuse_to_start(app, exc.message)
        return 2
    except PplexError as exc:
        _refuse_to_start(app, exc.message)
        return 2
    shell = DesktopShell(services)
    instance = _listen_for_later_starts(shell)

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
    instance.close()
    return 0


def _listen_for_later_starts(shell: DesktopShell) -> InstanceServer:
    from pplex_desktop.ui.single_instance import InstanceServer

    def bring_forward() -> None:
        if not shell.quitting:
            shell.window.showNormal()
            shell.window.raise_()
            shell.window.activateWindow()

    return InstanceServer(shell.services.data_dir, bring_forward)


if __name__ == "__main__":
    sys.exit(main())
