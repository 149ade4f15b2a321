"""core/db.py: store work runs on the database's own threads, and close() waits for it.

Closing a SQLite connection while another thread is inside it crashes the interpreter
(pplex-gateway died of SIGSEGV at stop now and then), so close() must wait for every piece of
work run() has started, even when its caller was cancelled, and must not wait for work that
was cancelled before it began.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pplex_desktop.core.db import Database

SCHEMA = ["CREATE TABLE t (x INTEGER)"]


async def test_run_is_off_the_loop_and_returns_the_result(tmp_path: Path) -> None:
    db = Database(tmp_path / "d.sqlite3", SCHEMA)
    loop_thread = threading.get_ident()

    def write(value: int, *, twice: bool) -> tuple[int, int]:
        with db.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (?)", (value,))
            if twice:
                conn.execute("INSERT INTO t VALUES (?)", (value,))
        return threading.get_ident(), int(
            db.connection().execute("SELECT COUNT(*) FROM t").fetchone()[0]
        )

    try:
        worker, count = await db.run(write, 7, twice=True)
        assert worker != loop_thread and count == 2
        with pytest.raises(ZeroDivisionError):
            await db.run(lambda: 1 // 0)
    finally:
        db.close()


async def test_close_waits_for_work_whose_caller_was_cancelled(tmp_path: Path) -> None:
    db = Database(tmp_path / "d.sqlite3", SCHEMA)
    inside = threading.Event()
    release = threading.Event()
    finished: list[str] = []

    def slow_write() -> None:
        conn = db.connection()
        inside.set()
        release.wait(10)
        conn.execute("INSERT INTO t VALUES (1)")  # on a connection close() must not close yet
        finished.append("written")

    task = asyncio.ensure_future(db.run(slow_write))
    assert await asyncio.to_thread(inside.wait, 10)
    task.cancel()  # the caller gives up; the thread cannot be stopped
    with pytest.raises(asyncio.CancelledError):
        await task

    closed = threading.Event()

    def close() -> None:
        db.close(wait_s=10)
        closed.set()

    closer = threading.Thread(target=close)
    closer.start()
    assert not closed.wait(0.3), "close() returned while a worker was inside a connection"
    release.set()
    closer.join(10)
    assert closed.is_set() and finished == ["written"]
    check = sqlite3.connect(tmp_path / "d.sqlite3")
    assert check.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    check.close()


async def test_work_cancelled_before_it_began_does_not_hold_close(tmp_path: Path) -> None:
    db = Database(tmp_path / "d.sqlite3", SCHEMA)
    release = threading.Event()
    ran: list[int] = []

    def block() -> None:
        release.wait(10)

    blockers = [asyncio.ensure_future(db.run(block)) for _ in range(8)]  # more than the workers
    queued = asyncio.ensure_future(db.run(ran.append, 1))
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    await asyncio.gather(*blockers)
    began = time.monotonic()
    await asyncio.to_thread(db.close, 10)
    assert time.monotonic() - began < 5
    assert ran == []


async def test_the_database_works_again_after_close(tmp_path: Path) -> None:
    db = Database(tmp_path / "d.sqlite3", SCHEMA)
    await db.run(lambda: db.connection().execute("INSERT INTO t VALUES (1)"))
    db.close()
    count = await db.run(lambda: db.connection().execute("SELECT COUNT(*) FROM t").fetchone()[0])
    assert count == 1
    db.close()
