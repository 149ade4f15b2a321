"""Damaged files at start-up, file modes, and the admin secret's hash, on the real CLIs.

A damaged SQLite file used to end start-up in a traceback (5 of 6 variants); now each one is a
sentence naming the file and what to do, with exit status 2 and the file left as it was.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from pplex_desktop.core.keystore import KeyStore
from tests.hostile.store_support import (
    ADMIN_SECRET,
    mode_of,
    process_env,
    run_desktop,
    run_gateway,
    snapshot,
    start_gateway,
)

KEYS = "pplex.sqlite3"
JOBS = "jobs.sqlite3"


def _real_store(data: Path) -> bytes:
    """A key store with enough keys to span several pages; returns its bytes."""
    store = KeyStore.in_folder(data)
    for i in range(200):
        store.create(f"key {i}")
    store.set_admin_secret(ADMIN_SECRET)
    store.close()
    return (data / KEYS).read_bytes()


def _truncated(data: Path) -> None:
    whole = _real_store(data)
    (data / KEYS).write_bytes(whole[: len(whole) // 2 + 100])


def _garbage(data: Path) -> None:
    (data / KEYS).write_bytes(random.Random(7).randbytes(16_384))


def _directory(data: Path) -> None:
    (data / KEYS).mkdir()
    (data / KEYS / "something").write_text("not a database")


def _wrong_schema(data: Path) -> None:
    """Ours by its schema_version, but its api_keys table lost most of its columns."""
    conn = sqlite3.connect(data / KEYS, isolation_level=None)
    conn.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (1);"
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE api_keys (id INTEGER PRIMARY KEY, name TEXT);"
    )
    conn.close()


def _foreign(data: Path) -> None:
    conn = sqlite3.connect(data / KEYS, isolation_level=None)
    conn.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
    conn.close()


DAMAGED: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncated, "is damaged"),
    "garbage": (_garbage, "is damaged (file is not a database)"),
    "directory": (_directory, "is a folder, not a database file"),
    "wrong schema": (
        _wrong_schema,
        "does not have the tables this version expects (missing api_keys.audio_in_s",
    ),
    "foreign database": (_foreign, "is not a pplex-desktop database (it holds the tables notes)"),
}


def _without_lock(files: dict[str, str]) -> dict[str, str]:
    # The folder lock is taken before the key store is opened; it is the one new file.
    return {k: v for k, v in files.items() if k != "pplex.lock"}


@pytest.mark.parametrize("variant", list(DAMAGED))
async def test_a_damaged_key_store_is_a_sentence_and_is_left_alone(
    tmp_path: Path, variant: str
) -> None:
    damage, said = DAMAGED[variant]
    damage(tmp_path)
    before = snapshot(tmp_path)
    result = await run_gateway(tmp_path)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"pplex-gateway: The key store {tmp_path / KEYS} {said}" in result.stderr
    assert "Move it aside to start with an empty store" in result.stderr
    assert _without_lock(snapshot(tmp_path)) == before


async def test_a_zero_length_wal_is_harmless(tmp_path: Path) -> None:
    _real_store(tmp_path)
    (tmp_path / (KEYS + "-wal")).write_bytes(b"")
    running = await start_gateway(tmp_path)
    assert await running.stop() == 0


async def test_a_damaged_job_store_is_a_sentence_too(tmp_path: Path) -> None:
    (tmp_path / JOBS).write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    before = snapshot(tmp_path)
    result = await run_gateway(tmp_path)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"The job store {tmp_path / JOBS} is damaged" in result.stderr
    assert snapshot(tmp_path)[JOBS] == before[JOBS]


async def test_the_desktop_says_it_too(tmp_path: Path) -> None:
    _garbage(tmp_path)
    before = snapshot(tmp_path)
    result = await run_desktop(tmp_path)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"pplex-desktop: The key store {tmp_path / KEYS} is damaged (file is not a database)."
        in result.stderr
    )
    assert _without_lock(snapshot(tmp_path)) == before


def _secret_files(data: Path) -> list[Path]:
    names = [KEYS, JOBS, "tls/ca.key", "tls/server.key"]
    return [data / n for n in names if (data / n).exists()]


async def test_secrets_are_owner_only_and_loose_modes_are_fixed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    tls = ("--tls", "auto", "--host", "127.0.0.1", "--lan-port", "0")
    running = await start_gateway(data, *tls)
    assert await running.stop() == 0
    assert mode_of(data) == 0o700, "the data folder stayed open to other users"
    assert mode_of(data / "tls") == 0o700
    files = _secret_files(data)
    assert len(files) == 4
    assert {f.name: mode_of(f) for f in files} == {f.name: 0o600 for f in files}

    # As an older version (or a careless copy) left them:
    data.chmod(0o755)
    (data / "tls").chmod(0o755)
    for path in files:
        path.chmod(0o644)
    running = await start_gateway(data, *tls)
    try:
        assert mode_of(data) == 0o700
        assert mode_of(data / "tls") == 0o700
        assert {f.name: mode_of(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode_of(data / (KEYS + "-wal")) == 0o600
    finally:
        assert await running.stop() == 0


def _meta(data: Path) -> dict[str, str]:
    conn = sqlite3.connect(data / KEYS)
    try:
        return {str(n): str(v) for n, v in conn.execute("SELECT name, value FROM meta")}
    finally:
        conn.close()


async def test_the_admin_secret_is_stored_salted_and_slow(tmp_path: Path) -> None:
    running = await start_gateway(tmp_path)
    assert await running.stop() == 0
    meta = _meta(tmp_path)
    assert "admin_secret_sha256" not in meta
    scheme, n, r, p, salt, digest = meta["admin_secret_scrypt"].split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(bytes.fromhex(salt)) == 16
    assert len(bytes.fromhex(digest)) == 32
    plain = hashlib.sha256(ADMIN_SECRET.encode()).hexdigest().encode()
    assert plain not in (tmp_path / KEYS).read_bytes()


async def test_an_old_unsalted_digest_still_works_and_is_upgraded(tmp_path: Path) -> None:
    KeyStore.in_folder(tmp_path).close()
    conn = sqlite3.connect(tmp_path / KEYS, isolation_level=None)
    conn.execute("DELETE FROM meta")
    conn.execute(
        "INSERT INTO meta VALUES ('admin_secret_sha256', ?)",
        (hashlib.sha256(ADMIN_SECRET.encode()).hexdigest(),),
    )
    conn.close()
    running = await start_gateway(tmp_path, env=process_env(PPLEX_ADMIN_SECRET=""))
    try:
        async with aiohttp.ClientSession() as http:
            wrong = {"X-Admin-Secret": "not-the-admin-secret-at-all"}
            async with http.get(running.url + "/admin/keys", headers=wrong) as resp:
                assert resp.status == 401
            assert "admin_secret_scrypt" not in _meta(tmp_path)
            right = {"X-Admin-Secret": ADMIN_SECRET}
            async with http.get(running.url + "/admin/keys", headers=right) as resp:
                assert resp.status == 200
    finally:
        assert await running.stop() == 0
    meta = _meta(tmp_path)
    assert "admin_secret_sha256" not in meta
    assert meta["admin_secret_scrypt"].startswith("scrypt$16384$8$1$")
    running = await start_gateway(tmp_path, env=process_env(PPLEX_ADMIN_SECRET=""))
    try:
        async with aiohttp.ClientSession() as http:
            right = {"X-Admin-Secret": ADMIN_SECRET}
            async with http.get(running.url + "/admin/keys", headers=right) as resp:
                assert resp.status == 200, "the upgraded hash does not verify"
    finally:
        assert await running.stop() == 0
