"""The settings file plus this run's command-line overrides, and saving them back honestly.

``--demo`` or ``--port`` apply to this run only: saving the settings dialog must not write them
into the file unless the user changed that very field in the dialog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.settings import Settings, load_settings, save_settings

_log = logging.getLogger(__name__)

# Fields the gateway reads only when it starts; changing them means a restart.
UI_ONLY_FIELDS = frozenset({"start_minimized", "close_action"})


class SettingsStore:
    def __init__(self, folder: Path, overrides: Mapping[str, Any] | None = None) -> None:
        self.folder = folder
        self.problem: str | None = None
        try:
            self.file = load_settings(folder)
        except ConfigError as exc:
            # A broken file must not stop the app; the defaults run until the user saves.
            self.problem = f"{exc.message} The defaults are used until you save the settings."
            _log.warning("%s", self.problem)
            self.file = Settings()
        self.overrides: dict[str, Any] = dict(overrides or {})
        self.effective = self.file.replace(**self.overrides) if self.overrides else self.file

    def prepare(self, wanted: Settings) -> Settings:
        """The settings to write to the file for ``wanted``, keeping this run's overrides out."""
        values: dict[str, Any] = {}
        for name, override in self.overrides.items():
            if getattr(wanted, name) == override:
                values[name] = getattr(self.file, name)
        return wanted.replace(**values) if values else wanted

    def save(self, wanted: Settings) -> Settings:
        """Write ``wanted`` (minus untouched overrides) atomically; return the new effective."""
        to_file = self.prepare(wanted)
        save_settings(self.folder, to_file)
        self.commit(to_file, wanted)
        return wanted

    def commit(self, to_file: Settings, wanted: Settings) -> None:
        """Adopt settings already written to the file (the write ran on another thread)."""
        self.overrides = {
            name: value
            for name, value in self.overrides.items()
            if getattr(wanted, name) == value and getattr(to_file, name) != value
        }
        self.file = to_file
        self.effective = wanted
        self.problem = None


def needs_restart(old: Settings, new: Settings) -> bool:
    """Whether the running gateway must restart for ``new`` to take effect."""
    old_values = old.to_json()
    new_values = new.to_json()
    return any(
        old_values[name] != new_values[name] for name in old_values if name not in UI_ONLY_FIELDS
    )
