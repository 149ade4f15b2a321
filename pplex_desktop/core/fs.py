"""The one way this package replaces a file: whole or not at all, with its permissions from birth.

A temporary file is made in the target's folder (a rename across file systems is a copy, not
atomic), written, flushed and fsynced, then renamed over the target, and the folder is fsynced
so the rename itself survives a power cut. A reader (the model server opening a voice, a phone
downloading a result, the next start reading settings.json) sees the old file or the new one,
never half of one. The temporary file is created with ``mode`` already set: a private key is
never readable by others, not even for the moment between creating and chmod-ing it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from pplex_desktop.core.errors import PplexError

PRIVATE = 0o600  # settings, keys, consent records: the owner only
PUBLIC = 0o644  # certificates and voices other users (the model server) must read


class FileWriteError(PplexError, OSError):
    """A file could not be written; the old one, if any, is untouched.

    Also an OSError, so code that already treats a full disk as an OSError keeps doing so.
    """

    code = "file_write_failed"
    status = 500


def fsync_dir(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable."""
    if os.name == "nt":
        return  # Windows cannot open a folder; its renames are durable on NTFS anyway
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file written by a library that only takes a name (a WAV writer) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_beside(path: Path, *, mode: int = PRIVATE, suffix: str = ".tmp") -> Path:
    """An empty, hidden temporary file in ``path``'s folder, created with ``mode``.

    For work that is finished elsewhere and then moved in with :func:`replace_with`.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=suffix, dir=path.parent)
    try:
        _chmod(fd, mode)
    finally:
        os.close(fd)
    return Path(tmp)


def replace_with(temp: Path, path: Path, *, mode: int | None = None) -> None:
    """Move the finished, fsynced ``temp`` (in ``path``'s folder) over ``path``, durably."""
    try:
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _failed(path, exc) from None


def write_atomic(
    path: Path, data: str | bytes, *, mode: int = PRIVATE, encoding: str = "utf-8"
) -> None:
    """Replace ``path`` with ``data`` (text is encoded with ``encoding``) atomically."""
    raw = data.encode(encoding) if isinstance(data, str) else data

    def write(fd: int, _tmp: Path) -> None:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)

    _replace(path, write, mode)


def write_atomic_with(path: Path, write: Callable[[Path], None], *, mode: int = PRIVATE) -> None:
    """Replace ``path`` with what ``write`` puts in the temporary file it is given, atomically.

    For libraries that write by file name (soundfile); the file is fsynced after ``write``.
    """

    def by_name(_fd: int, tmp: Path) -> None:
        write(tmp)
        fsync_file(tmp)

    _replace(path, by_name, mode)


def _replace(path: Path, write: Callable[[int, Path], None], mode: int) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _failed(path, exc) from None
    tmp = Path(name)
    try:
        try:
            _chmod(fd, mode)
            write(fd, tmp)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise _failed(path, exc) from None
        raise
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        raise _failed(path, exc) from None


def _chmod(fd: int, mode: int) -> None:
    if os.name == "nt":
        return  # Windows has no such bits; the data folder's ACL protects the file
    os.fchmod(fd, mode)


def _failed(path: Path, exc: OSError) -> FileWriteError:
    reason = exc.strerror or type(exc).__name__
    error = FileWriteError(
        # The name only: this sentence may reach an HTTP answer, which never shows local paths.
        f"The file {path.name} could not be written ({reason}); check the free disk space "
        "and that this user may write to its folder."
    )
    error.errno = exc.errno
    return error
