"""The desktop's chores run on its own I/O loop and disk thread, never on the gateway's loop,
where the live audio is relayed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from pplex_desktop.core.keystore import ApiKey, KeyStore
from pplex_desktop.core.settings import Settings
from pplex_desktop.core.settings import save_settings as core_save_settings
from pplex_desktop.desktop.offline_client import JobClient
from pplex_desktop.desktop.offline_record import ItemState
from pplex_desktop.ui.offline import offline_queue
from pplex_desktop.ui.settings import settings_keeper
from tests.gui.conftest import WAIT_MS, Launch
from tests.gui.offline_helpers import JOB_WAIT_MS, drop, ready_page, rows, spoken_files

GATEWAY_THREAD = "pplex-gateway"
IO_THREAD = "pplex-desktop-io"
DISK_THREAD = "pplex-desktop-io-disk"


def test_the_desktops_chores_never_run_on_the_gateway_loop(
    qtbot: QtBot, launch: Launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, str] = {}

    def here(what: str) -> None:
        seen.setdefault(what, threading.current_thread().name)

    list_keys = KeyStore.list_keys

    def listing(self: KeyStore, **kwargs: Any) -> list[ApiKey]:
        here("listing the keys")
        return list_keys(self, **kwargs)

    save = core_save_settings  # what settings_keeper calls, under its own name there

    def saving(folder: Path, settings: Settings) -> Path:
        here("saving the settings")
        return save(folder, settings)

    adopt = offline_queue.adopt

    def adopting(keystore: KeyStore, folder: Path, job_ids: list[str]) -> int:
        here("adopting the jobs")
        return adopt(keystore, folder, job_ids)

    submit = JobClient.submit

    async def uploading(
        self: JobClient, base: str, path: Path, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        here("uploading a file")
        return await submit(self, base, path, fields)

    spies: list[tuple[object, str, Callable[..., Any]]] = [
        (KeyStore, "list_keys", listing),
        (settings_keeper, "save_settings", saving),
        (offline_queue, "adopt", adopting),
        (JobClient, "submit", uploading),
    ]
    for owner, name, spy in spies:
        monkeypatch.setattr(owner, name, spy)

    shell = launch()
    shell.window.show_page("keys")
    shell.settings.update(shell.settings.current.replace(close_action="quit"))
    page = ready_page(qtbot, shell)
    drop(page, spoken_files(tmp_path / "in", ("one",)))
    qtbot.waitUntil(lambda: len(seen) == len(spies), timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: bool(rows(page)) and rows(page)[0].state is ItemState.DONE, timeout=JOB_WAIT_MS
    )

    assert seen == {
        "listing the keys": f"{DISK_THREAD}_0",
        "saving the settings": f"{DISK_THREAD}_0",
        "adopting the jobs": f"{DISK_THREAD}_0",
        "uploading a file": IO_THREAD,
    }
    assert GATEWAY_THREAD not in seen.values()
