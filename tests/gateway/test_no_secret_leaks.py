"""After real traffic, no plaintext key or admin secret sits in the database, logs or temp."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

from tests.gateway.conftest import ADMIN_SECRET, Gateway


def _files_containing(folder: Path, needles: list[bytes], since: float = 0.0) -> list[str]:
    found: list[str] = []
    for path in folder.rglob("*"):
        try:
            if not path.is_file() or path.stat().st_mtime < since:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        found += [f"{path}: {n[:12]!r}" for n in needles if n in data]
    return found


async def test_keys_and_secret_never_stored_or_logged(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.time() - 1
    async with await gateway.admin(
        "POST", "/admin/keys/generate", data=aiohttp.FormData({"name": "leaky"})
    ) as resp:
        key = (await resp.json())["key"]
    for params, headers, url in (
        ({"api_key": key}, {}, gateway.url + "/v1/info"),
        ({}, {"X-API-Key": key}, gateway.url + "/v1/info"),
        ({}, {}, gateway.url.replace("http://", f"http://u:{key}@") + "/v1/info"),
        ({"api_key": key}, {}, gateway.url + "/nope"),
        ({"api_key": key + "x"}, {}, gateway.url + "/v1/info"),
    ):
        async with gateway.http.get(url, params=params, headers=headers):
            pass
    async with await gateway.admin("GET", "/admin/keys", headers={"X-Admin-Secret": "guess-123"}):
        pass
    gateway.store.flush_usage()
    needles = [key.encode(), ADMIN_SECRET.encode(), key[5:30].encode()]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Request GET /v1/info?api_key=REDACTED" in logged
    for needle in needles:
        assert needle.decode() not in logged
    # Reading every file under the temporary folder takes a while: not on the loop.
    assert await asyncio.to_thread(_files_containing, tmp_path, needles) == []
    temp = Path(tempfile.gettempdir())
    assert await asyncio.to_thread(_files_containing, temp, needles[:2], started) == []
