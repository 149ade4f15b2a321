"""Saving settings off the Qt thread and applying them to the gateway and the key store."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import Settings, save_settings
from pplex_desktop.desktop.settings_store import SettingsStore, needs_restart
from pplex_desktop.ui.bridge import LoopBridge, OnError
from pplex_desktop.ui.server.gateway_control import GatewayController

_log = logging.getLogger(__name__)


class SettingsKeeper(QObject):
    changed = Signal(object)  # the new effective Settings

    def __init__(
        self,
        store: SettingsStore,
        bridge: LoopBridge,
        gateway: GatewayController,
        keystore: KeyStore,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self._bridge = bridge
        self._gateway = gateway
        self._keystore = keystore

    @property
    def current(self) -> Settings:
        return self.store.effective

    @property
    def folder(self) -> str:
        return str(self.store.folder)

    def update(
        self,
        wanted: Settings,
        on_done: Callable[[Settings], None] | None = None,
        on_error: OnError | None = None,
    ) -> None:
        """Write ``wanted`` atomically on the gateway thread, then apply it.

        The gateway restarts only when a setting it reads at start-up changed.
        """
        old = self.store.effective
        to_file = self.store.prepare(wanted)
        keystore = self._keystore

        def write() -> None:
            save_settings(self.store.folder, to_file)
            # Read by create() in this same disk thread: new keys get the new defaults.
            keystore.default_rpm = wanted.default_rpm
            keystore.default_max_sessions = wanted.default_max_sessions

        def written(_: None) -> None:
            self.store.commit(to_file, wanted)
            _log.info("The settings were saved.")
            self._gateway.apply(wanted, restart=needs_restart(old, wanted))
            self.changed.emit(wanted)
            if on_done is not None:
                on_done(wanted)

        self._bridge.call_fn(write, on_done=written, on_error=on_error, what="saving the settings")
