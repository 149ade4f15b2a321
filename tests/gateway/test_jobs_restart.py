"""A gateway killed mid-job (SIGKILL, no goodbye) runs the job again when it starts again."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import pplex_desktop
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.sim.sim import SimConfig, SimServer
from tests.gateway.offline_support import form, tone_wav, wav_of

Proc = asyncio.subprocess.Process
PACKAGE_ROOT = str(Path(pplex_desktop.__file__).resolve().parents[1])


async def _start_gateway(data: Path, backend: str) -> tuple[Proc, str]:
    env = {
        **os.environ,
        "PPLEX_ADMIN_SECRET": "restart-test-admin-secret",
        "PYTHONPATH": PACKAGE_ROOT,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.gateway",
        "--data-dir",
        str(data),
        "--port",
        "0",
        "--backend",
        backend,
        "--log-level",
        "WARNING",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "the gateway exited before it listened"
        if "is listening on" in line:
            return proc, line.split("is listening on ", 1)[1].split(" ", 1)[0]


@pytest.fixture
async def slow_sim() -> AsyncIterator[SimServer]:
    sim = SimServer(SimConfig(frame_delay_s=0.02))  # 4x real time: a 6 s file takes ~2 s
    await sim.start("127.0.0.1", 0)
    yield sim
    await sim.stop()


def _state(data: Path, job_id: str) -> tuple[str, int]:
    with sqlite3.connect(data / "jobs.sqlite3") as conn:
        row = conn.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(row[0]), int(row[1])


async def test_a_killed_gateway_finishes_the_job_after_restart(
    tmp_path: Path, slow_sim: SimServer
) -> None:
    data = tmp_path / "data"
    store = KeyStore.in_folder(data)
    key = store.create("batch").key
    store.close()
    headers = {"X-API-Key": key}
    assert slow_sim.url is not None
    proc, url = await _start_gateway(data, slow_sim.url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                url + "/v1/jobs", headers=headers, data=form(tone_wav(6.0), silence_s="2")
            ) as resp:
                assert resp.status == 202
                job = await resp.json()
            await slow_sim.wait_until(lambda s: s.frames_out >= 20)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            assert _state(data, job["id"]) == ("running", 1)
            await slow_sim.wait_until(lambda s: s.sessions_finished == 1)

            proc, url = await _start_gateway(data, slow_sim.url)
            while True:
                async with http.get(
                    url + f"/v1/jobs/{job['id']}", params={"wait": "30"}, headers=headers
                ) as resp:
                    body = await resp.json()
                if body["state"] not in ("queued", "running"):
                    break
            assert (body["state"], body["attempts"], body["progress"]) == ("done", 2, 1.0)
            async with http.get(body["audio_url"], headers=headers) as resp:
                assert resp.status == 200
                pcm, rate, _subtype, _channels = wav_of(await resp.read())
            assert (len(pcm), rate) == (8 * 24_000, 24_000)
            assert slow_sim.stats.sessions_started == 2
    finally:
        if proc.returncode is None:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 15) == 0
