"""pplex-gateway as a user starts it: a real process, a real port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp


async def _start(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.gateway",
        "--data-dir",
        str(data),
        "--port",
        "0",
        "--log-level",
        "WARNING",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            break
        lines.append(line)
        if "is listening on" in line:
            break
    return proc, lines


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.terminate()
    return await asyncio.wait_for(proc.wait(), 15)


def _url(lines: list[str]) -> str:
    line = next(x for x in lines if "is listening on" in x)
    return line.split("is listening on ", 1)[1].split(" ", 1)[0]


async def test_first_start_prints_the_admin_secret_once(tmp_path: Path) -> None:
    env = {"PPLEX_ADMIN_SECRET": ""}
    proc, lines = await _start(tmp_path, "--demo", env=env)
    text = "".join(lines)
    assert "Save this key!" in text
    secret = next(x.strip() for x in lines if x.strip().startswith("pplxadmin_"))
    url = _url(lines)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url + "/admin/keys/generate", headers={"X-Admin-Secret": secret}, data={"name": "cli"}
        ) as resp:
            assert resp.status == 200
        async with http.get(url + "/healthz") as resp:
            assert (await resp.json())["backends"][0]["name"] == "demo: echoes your voice"
    assert await _stop(proc) == 0
    proc, lines = await _start(tmp_path, "--demo", env=env)
    assert "Save this key!" not in "".join(lines)
    assert await _stop(proc) == 0
    assert secret.encode() not in (tmp_path / "pplex.sqlite3").read_bytes()


async def test_reset_admin_secret_prints_a_new_one(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.gateway",
        "--data-dir",
        str(tmp_path),
        "--reset-admin-secret",
        stdout=subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert b"pplxadmin_" in out and b"Save this key!" in out


async def test_port_in_use_is_a_sentence(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pplex_desktop.gateway",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(port),
            "--demo",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PPLEX_ADMIN_SECRET": "a-long-enough-admin-secret"},
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use by another program" in err.decode()
    assert "Traceback" not in err.decode()


async def test_legacy_keys_import(tmp_path: Path) -> None:
    legacy = tmp_path / "api_keys.json"
    legacy.write_text('{"sk-legacy-1234567890": {"name": "old app", "created_at": 1700000000}}')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.gateway",
        "--data-dir",
        str(tmp_path),
        "--import-keys",
        str(legacy),
        stdout=subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert b"Imported 1 keys" in out
    proc, lines = await _start(
        tmp_path, "--demo", env={"PPLEX_ADMIN_SECRET": "a-long-enough-admin-secret"}
    )
    async with (
        aiohttp.ClientSession() as http,
        http.get(_url(lines) + "/v1/info", params={"api_key": "sk-legacy-1234567890"}) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["key"]["name"] == "old app"
    assert await _stop(proc) == 0


def test_a_short_admin_secret_in_the_environment_is_refused_by_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pplex_desktop.gateway", "--data-dir", str(tmp_path), "--demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PPLEX_ADMIN_SECRET": "too-short-123"},
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pplex-gateway: PPLEX_ADMIN_SECRET is 13 characters long, but an admin secret needs at "
        "least 16. Set a longer one, or unset it to have a secret made and shown once."
    )
    assert "too-short-123" not in done.stderr + done.stdout  # the value is never echoed
    assert "Traceback" not in done.stderr
