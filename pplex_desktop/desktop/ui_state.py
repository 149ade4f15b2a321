"""Window geometry, last page, talk mode and similar UI state, kept in the data folder.

It lives beside the data it describes (``<data>/ui-state.json``) rather than in the user's Qt
settings, so ``--data-dir`` gives a folder its own window, page and talk choices, and a fresh
folder starts fresh. settings.json stays the gateway's; this file is only what the window
remembers, and a damaged one is simply started over.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pplex_desktop.core.fs import FileWriteError, write_atomic

ORGANIZATION = "pplex"
APPLICATION = "pplex-desktop"
UI_STATE_NAME = "ui-state.json"

_log = logging.getLogger(__name__)
Value = str | int | float | bool | None


class UiState:
    """A small key-value file; every change is written at once, atomically."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / UI_STATE_NAME
        self._values: dict[str, Value] = self._read()

    def _read(self) -> dict[str, Value]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            _log.warning(
                "The window state in %s cannot be read (%s); it starts over.", self.path, exc
            )
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {
            str(k): v for k, v in loaded.items() if isinstance(v, str | int | float | bool | None)
        }

    def value(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set_value(self, key: str, value: Value) -> None:
        if not isinstance(value, str | int | float | bool | None):
            raise TypeError(f"The UI state keeps plain values, not {type(value).__name__}.")
        if key in self._values and self._values[key] == value:
            return
        self._values[key] = value
        self._write()

    def _write(self) -> None:
        folder = self.path.parent
        text = json.dumps(self._values, indent=2, sort_keys=True) + "\n"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, text)
        except FileWriteError as exc:
            # Losing the window position is no reason to interrupt the user.
            _log.warning("The window state was not saved. %s", exc)
        except OSError as exc:
            # Losing the window position is no reason to interrupt the user.
            _log.warning("The window state could not be saved to %s: %s.", self.path, exc)


_open: dict[Path, UiState] = {}


def ui_state(folder: Path) -> UiState:
    """The UI state of the data folder ``folder``; one shared object per folder."""
    key = folder.resolve()
    state = _open.get(key)
    if state is None:
        state = _open[key] = UiState(key)
    return state


def forget(folder: Path) -> None:
    """Drop the cached state of ``folder`` (the app quit; a relaunch reads the file again)."""
    _open.pop(folder.resolve(), None)
