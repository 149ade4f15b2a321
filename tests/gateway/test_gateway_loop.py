"""The gateway's loop does gateway work only: an offline job's Opus encoding and the job
store's writes run in worker threads, so live sessions and /healthz never wait behind them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pplex_desktop.core.db import Database
from pplex_desktop.core.errors import UnavailableError
from pplex_desktop.core.jobstore import DB_NAME, Job, JobStore, NewJob
from pplex_desktop.gateway.offline import engine as offline_engine
from pplex_desktop.moshi.codec import OpusEncoder
from tests.gateway.conftest import GatewayFactory
from tests.gateway.offline_support import PERSONA, finished, form, submit, tone_wav


async def test_an_offline_job_encodes_its_frames_off_the_gateway_loop(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    class WatchedEncoder(OpusEncoder):
        def encode(self, pcm: Any) -> bytes:
            threads.append(threading.get_ident())
            return super().encode(pcm)

    monkeypatch.setattr(offline_engine, "OpusEncoder", WatchedEncoder)
    gw = await make_gateway()
    key = gw.new_key()
    job = await submit(gw, key, tone_wav(2.0), persona=PERSONA, silence_s="0.5")
    done = await finished(gw, key, job["id"])
    assert done["state"] == "done", done
    # Every frame of 2.5 s went through the watched encoder, none of them on this loop's thread.
    assert len(threads) >= 2.5 / 0.08
    assert threading.get_ident() not in threads


async def test_a_locked_job_database_does_not_freeze_the_gateway(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await make_gateway()
    key = gw.new_key()
    writing = threading.Event()
    create = JobStore.create

    def watched_create(self: JobStore, new: NewJob, *, job_id: str, now: float) -> Job:
        writing.set()
        return create(self, new, job_id=job_id, now=now)

    monkeypatch.setattr(JobStore, "create", watched_create)
    # Another program holds the write lock, as a backup tool or a second gateway would.
    locker = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    health: dict[str, Any] = {}

    def another_client() -> None:
        # A client of its own thread: it sees the gateway as the network does, whatever this
        # test's loop is doing.
        try:
            if not writing.wait(20):
                health["error"] = "the job was never written"
                return
            started = time.monotonic()
            try:
                with urllib.request.urlopen(gw.url + "/healthz", timeout=1.0) as resp:
                    health["status"] = resp.status
            except OSError as exc:
                health["error"] = repr(exc)
            health["seconds"] = time.monotonic() - started
        finally:
            locker.execute("ROLLBACK")

    client = threading.Thread(target=another_client, name="another-client")
    client.start()
    try:
        async with gw.http.post(
            gw.url + "/v1/jobs",
            headers={"X-API-Key": key},
            data=form(tone_wav(1.0), "tone.wav", persona=PERSONA),
        ) as resp:
            body = await resp.json()
            status = resp.status
    finally:
        await asyncio.to_thread(client.join, 30)
        locker.close()
    assert health.get("status") == 200, health
    assert health["seconds"] < 1.0
    # The request that waited for the lock went through once it was released.
    assert status == 202, body


async def test_a_lock_held_past_the_busy_timeout_is_a_503_with_a_sentence(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.sqlite3"
    db = Database(path, ["CREATE TABLE t (x INTEGER)"])
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("BEGIN EXCLUSIVE")

    def write() -> None:
        conn = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            conn.execute("INSERT INTO t VALUES (1)")
        finally:
            conn.close()

    try:
        with pytest.raises(UnavailableError) as caught:
            await db.run(write)
    finally:
        setup.close()
        db.close()
    assert caught.value.status == 503
    assert caught.value.code == "database_busy"
    assert "locked by another program" in caught.value.message
