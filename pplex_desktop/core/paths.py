"""Where pplex-desktop keeps its files.

One environment variable, ``PPLEX_DATA_DIR``, puts everything under one folder; tests always
set it so that nothing touches the user's real profile.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import platformdirs

APP_NAME = "pplex-desktop"
DATA_DIR_ENV = "PPLEX_DATA_DIR"
# The folder holds key digests, the TLS CA key and users' recordings: owner-only, like ~/.ssh.
FOLDER_MODE = 0o700


def make_private(path: Path) -> None:
    """Drop group and other permissions of an existing file or folder (0644 -> 0600)."""
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the data folder, created owner-only or made so if an older version left it open."""
    if override is not None:
        path = Path(override)
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    else:
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    make_private(path)
    return path
