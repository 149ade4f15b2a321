"""Two processes on one data folder: the second must refuse before it touches anything.

Unlocked, a second gateway deleted the first one's in-flight upload (its client got
``415 not_audio`` for a valid file) and re-queued its running job, spending one of its three
attempts. Here the first gateway holds both an upload folder with no job row yet and a running
job, exactly the state the second one used to "recover".
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from pplex_desktop.core.folder_lock import FolderInUseError, lock_folder
from tests.hostile.store_support import (
    process_env,
    run_desktop,
    run_gateway,
    snapshot,
    start_desktop,
    start_gateway,
)

IN_FLIGHT = "job_0123456789abcdef0123"
RUNNING = "job_fedcba9876543210fedc"


def _plant_work(data: Path) -> None:
    """An upload still arriving (folder, no row) and a running job, as the first one has them."""
    upload = data / "jobs" / IN_FLIGHT
    upload.mkdir(parents=True)
    (upload / "upload.part").write_bytes(b"RIFF" + b"\0" * 1000)
    (data / "jobs" / RUNNING).mkdir()
    conn = sqlite3.connect(data / "jobs.sqlite3", isolation_level=None)
    try:
        conn.execute(
            "INSERT INTO jobs (id, key_id, key_name, state, priority, engine, input_name, "
            "persona, voice, silence_s, input_s, attempts, created_at, started_at) VALUES "
            "(?, 1, 'k', 'running', 1, 'stream', 'a.wav', 'p', 'NATF2.pt', 0, 1, 1, ?, ?)",
            (RUNNING, time.time(), time.time()),
        )
    finally:
        conn.close()


def _attempts(data: Path) -> int:
    conn = sqlite3.connect(data / "jobs.sqlite3")
    try:
        row = conn.execute("SELECT attempts, state FROM jobs WHERE id = ?", (RUNNING,)).fetchone()
    finally:
        conn.close()
    assert row[1] == "running"
    return int(row[0])


async def test_a_second_gateway_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    first = await start_gateway(tmp_path)
    try:
        _plant_work(tmp_path)
        before = snapshot(tmp_path)
        second = await run_gateway(tmp_path)
        assert second.code == 2, second.stderr
        assert (
            f"The data folder {tmp_path} is in use by pplex-gateway (process {first.pid})"
            in second.stderr
        )
        assert "another data folder (--data-dir)" in second.stderr
        assert "Traceback" not in second.stderr
        assert (tmp_path / "jobs" / IN_FLIGHT / "upload.part").exists()
        assert _attempts(tmp_path) == 1, "the first gateway's running job was re-queued"
        assert snapshot(tmp_path) == before
    finally:
        assert await first.stop() == 0


async def test_the_desktop_is_refused_while_a_gateway_holds_the_folder(tmp_path: Path) -> None:
    first = await start_gateway(tmp_path)
    try:
        before = snapshot(tmp_path)
        desktop = await run_desktop(tmp_path)
        assert desktop.code == 2, desktop.stderr
        assert f"is in use by pplex-gateway (process {first.pid})" in desktop.stderr
        assert "Traceback" not in desktop.stderr
        assert snapshot(tmp_path) == before, "the desktop replaced keys or touched files"
    finally:
        assert await first.stop() == 0


async def test_a_second_desktop_brings_the_first_ones_window_forward(tmp_path: Path) -> None:
    first = await start_desktop(tmp_path)
    try:
        before = snapshot(tmp_path)
        second = await run_desktop(tmp_path)
        assert second.code == 0, second.stderr
        assert "already running on this data folder; its window was brought forward" in (
            second.stdout
        )
        await first.wait_for_log("Another start of pplex-desktop brought this window forward.")
        after = snapshot(tmp_path)
        # The first one's own writes (usage, its WAL) may move; nothing of the second's appears.
        assert set(after) == set(before)
        assert after["pplex.lock"] == before["pplex.lock"]
    finally:
        assert await first.stop() == 0


async def test_a_lock_left_by_a_dead_process_does_not_block(tmp_path: Path) -> None:
    crashed = await start_gateway(tmp_path)
    await crashed.kill()  # SIGKILL: no clean-up ran, the lock file still names it
    assert json.loads((tmp_path / "pplex.lock").read_text())["pid"] == crashed.pid
    running = await start_gateway(tmp_path)
    try:
        held = json.loads((tmp_path / "pplex.lock").read_text())
        assert held == {"program": "pplex-gateway", "pid": running.pid}
    finally:
        assert await running.stop() == 0
    # Released at a clean exit too: the next start is not refused either.
    again = await start_gateway(tmp_path, env=process_env())
    assert await again.stop() == 0


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    held = lock_folder(tmp_path, "pplex-desktop")
    try:
        with pytest.raises(FolderInUseError) as refused:
            lock_folder(tmp_path, "pplex-gateway")
        assert refused.value.message == (
            f"The data folder {tmp_path} is in use by pplex-desktop (process {os.getpid()}). "
            "Stop that one first, or give this one another data folder (--data-dir)."
        )
    finally:
        held.release()
    again = lock_folder(tmp_path, "pplex-gateway")
    assert json.loads((tmp_path / "pplex.lock").read_text())["program"] == "pplex-gateway"
    again.release()
