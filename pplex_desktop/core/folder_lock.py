"""One process per data folder: an advisory lock held for the life of the process.

The desktop app and ``pplex-gateway`` default to the same folder. Two of them on it clean up
each other's upload spool and re-run each other's jobs as "interrupted", so the second one
must refuse to start before it touches anything. ``flock`` is released by the kernel when
the holder dies, however it dies, so a lock file left behind by a crash never blocks; the
pid and program written into the file only serve to name the holder in the refusal.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pplex_desktop.core.errors import PplexError

LOCK_NAME = "pplex.lock"


class FolderInUseError(PplexError):
    code = "data_folder_in_use"
    status = 409


@dataclass
class FolderLock:
    path: Path
    program: str
    _fd: int | None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        # The file stays: unlinking it would let a third process lock a fresh inode while a
        # second one still waits on the old one.
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock


def _holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        program, pid = str(data["program"])[:60], int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another pplex-desktop or pplex-gateway process"
    return f"{program} (process {pid})"


def lock_folder(folder: Path, program: str) -> FolderLock:
    """Lock ``folder`` for this process or raise FolderInUseError naming the holder."""
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise FolderInUseError(
            f"The data folder {folder} is in use by {holder}. Stop that one first, or give "
            "this one another data folder (--data-dir)."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    record = json.dumps({"program": program, "pid": os.getpid()}).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, record + b"\n", 0)
    return FolderLock(path, program, fd)
