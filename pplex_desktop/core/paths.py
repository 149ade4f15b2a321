"""Where pplex-desktop keeps its files.

One environment variable, ``PPLEX_DATA_DIR``, puts everything under one folder; tests always
set it so that nothing touches the user's real profile.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "pplex-desktop"
DATA_DIR_ENV = "PPLEX_DATA_DIR"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the data folder, creating it with private permissions if needed."""
    if override is not None:
        path = Path(override)
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    else:
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
