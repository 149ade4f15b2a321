"""core/fs.py: a file is replaced whole or not at all, with the permissions asked for."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from pplex_desktop.core import fs
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.fs import FileWriteError, write_atomic, write_atomic_with

posix_only = pytest.mark.skipif(os.name == "nt", reason="Windows has no permission bits")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_and_bytes_replace_the_file(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    write_atomic(target, "first\n")
    assert target.read_text("utf-8") == "first\n"
    write_atomic(target, b"\x00second")
    assert target.read_bytes() == b"\x00second"
    write_atomic(target, "caf\u00e9")
    assert target.read_bytes() == "caf\u00e9".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_the_mode_is_honoured_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "file"
    old = os.umask(0o077)
    try:
        write_atomic(target, b"x", mode=mode)
    finally:
        os.umask(old)
    assert _mode(target) == mode
    write_atomic(target, b"y")
    assert _mode(target) == fs.PRIVATE, "the default is owner-only"


@posix_only
def test_a_private_file_is_never_readable_by_others_while_written(tmp_path: Path) -> None:
    seen: list[int] = []
    write_atomic_with(tmp_path / "ca.key", lambda tmp: seen.append(_mode(tmp)))
    assert seen == [0o600]


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "response.wav"
    write_atomic(target, b"the old answer")

    def half(tmp: Path) -> None:
        tmp.write_bytes(b"the new ans")
        raise RuntimeError("the engine stopped")

    with pytest.raises(RuntimeError, match="engine stopped"):
        write_atomic_with(target, half)
    assert target.read_bytes() == b"the old answer"
    assert [p.name for p in tmp_path.iterdir()] == ["response.wav"]


def test_a_full_disk_is_a_sentence_and_the_old_file_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "settings.json"
    write_atomic(target, "old")

    def full(_fd: int, _data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(FileWriteError) as caught:
        write_atomic(target, "new" * 1000)
    monkeypatch.undo()
    error = caught.value
    assert isinstance(error, PplexError) and isinstance(error, OSError)
    assert error.errno == errno.ENOSPC
    assert str(error).startswith("The file settings.json could not be written (")
    assert str(error).endswith(".")
    assert str(tmp_path) not in str(error), "an answer must not show local paths"
    assert target.read_text("utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_a_missing_folder_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(FileWriteError, match=r"^The file x\.json could not be written \(.+\.$"):
        write_atomic(tmp_path / "gone" / "x.json", "{}")


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_part(tmp_path: Path) -> None:
    target = tmp_path / "transcript.json"
    versions = [bytes([65 + i]) * (256 * 1024) for i in range(4)]
    write_atomic(target, versions[0])
    done = threading.Event()
    torn: list[int] = []
    reads = 0

    def read() -> None:
        nonlocal reads
        while not done.is_set() and reads < 100_000:
            data = target.read_bytes()
            reads += 1
            if data not in versions:
                torn.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(60):
            write_atomic(target, versions[n % len(versions)])
    finally:
        done.set()
        reader.join(timeout=30)
    assert reads > 0
    assert torn == []


def test_replace_with_moves_a_finished_file_in_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "voice.wav"
    temp = fs.temp_beside(target, suffix=".wav")
    assert temp.parent == tmp_path and temp.name.startswith(".")
    temp.write_bytes(b"RIFF")
    fs.fsync_file(temp)
    fs.replace_with(temp, target, mode=0o644)
    assert target.read_bytes() == b"RIFF"
    if os.name != "nt":
        assert _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["voice.wav"]
