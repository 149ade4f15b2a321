"""What the Talk page remembers between runs: its choices, under "talk/" in the UI state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pplex_desktop.desktop.ui_state import ui_state

STATE_KEY = "talk/"  # UI-state prefix for what the page remembers between runs


class TalkMemory:
    """One folder's remembered Talk choices (``--data-dir`` gives each folder its own)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def remember(self, name: str, value: str | int | bool) -> None:
        ui_state(self._data_dir).set_value(STATE_KEY + name, value)

    def recall(self, name: str, default: Any) -> Any:
        """The remembered value as the type of ``default``; ``default`` if none or unreadable."""
        value = ui_state(self._data_dir).value(STATE_KEY + name, default)
        if isinstance(default, bool):
            return value in (True, "true", "1", 1)
        if isinstance(default, int):
            try:
                return int(str(value))
            except ValueError:
                return default
        return value if isinstance(value, str) else default
