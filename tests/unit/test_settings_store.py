"""This run's --demo/--port stay out of the settings file unless the user changes them."""

from __future__ import annotations

import json
from pathlib import Path

from pplex_desktop.core.settings import SETTINGS_NAME, Settings, save_settings
from pplex_desktop.desktop.settings_store import SettingsStore, needs_restart


def test_overrides_are_not_written_unless_changed(tmp_path: Path) -> None:
    save_settings(tmp_path, Settings(port=8100, default_rpm=30))
    store = SettingsStore(tmp_path, {"demo": True, "port": 0})
    assert (store.effective.demo, store.effective.port, store.effective.default_rpm) == (
        True,
        0,
        30,
    )
    store.save(store.effective.replace(default_rpm=31))
    data = json.loads((tmp_path / SETTINGS_NAME).read_text())
    assert (data["demo"], data["port"], data["default_rpm"]) == (False, 8100, 31)
    assert store.overrides == {"demo": True, "port": 0}

    # The user turns the demo off in the dialog: that is a real choice, written and adopted.
    store.save(store.effective.replace(demo=False, port=9000))
    data = json.loads((tmp_path / SETTINGS_NAME).read_text())
    assert (data["demo"], data["port"]) == (False, 9000)
    assert store.overrides == {}
    assert store.effective == store.file


def test_a_broken_file_means_defaults_and_a_sentence(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_NAME).write_text("{not json")
    store = SettingsStore(tmp_path)
    assert store.effective == Settings()
    assert store.problem is not None
    assert store.problem.endswith("The defaults are used until you save the settings.")


def test_what_needs_a_restart() -> None:
    base = Settings()
    assert not needs_restart(base, base.replace(close_action="quit", start_minimized=True))
    assert needs_restart(base, base.replace(port=9000))
    assert needs_restart(base, base.replace(demo=True))
    assert needs_restart(base, base.replace(max_upload_mb=10.0))
