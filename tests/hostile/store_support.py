"""The real ``pplex-gateway`` and ``pplex-desktop`` processes on fresh data folders.

Each runs the installed console script with PYTHONPATH on this checkout, so the code under
test is this tree's, started exactly as a user starts it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN_SECRET = "hostile-admin-secret-0123456789"
START_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 30.0


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["PPLEX_ADMIN_SECRET"] = ADMIN_SECRET
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("PPLEX_DESKTOP_EXIT_WHEN_SHOWN", None)
    env.update(extra)
    return env


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    url: str
    lines: list[str]
    log: str = ""  # its stderr, once stopped

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        assert self.proc.stderr is not None
        self.log = (await asyncio.wait_for(self.proc.stderr.read(), EXIT_TIMEOUT_S)).decode()
        return await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT_S)

    async def kill(self) -> None:
        self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT_S)


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


def gateway_command(data: Path, *args: str) -> list[str]:
    return [str(BIN / "pplex-gateway"), "--data-dir", str(data), *args]


async def start_gateway(
    data: Path, *args: str, port: str = "0", env: dict[str, str] | None = None
) -> Running:
    """A gateway serving the demo backend, once it says where it listens."""
    proc = await asyncio.create_subprocess_exec(
        *gateway_command(data, "--demo", "--port", port, "--log-level", "WARNING", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or process_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                err = b"" if proc.stderr is None else await proc.stderr.read()
                raise AssertionError(f"the gateway did not start: {err.decode()[-2000:]}")
            lines.append(line)
            if "is listening on" in line:
                break
    url = lines[-1].split("is listening on ", 1)[1].split(" ", 1)[0]
    return Running(proc, url, lines)


async def lan_url(running: Running) -> str:
    """The HTTPS site's URL, from the line the gateway prints after the listening line."""
    assert running.proc.stdout is not None
    line = (await asyncio.wait_for(running.proc.stdout.readline(), START_TIMEOUT_S)).decode()
    running.lines.append(line)
    found = re.search(r"over HTTPS on (https://[^\s]+?:\d+)", line)
    assert found is not None, line
    return found.group(1)


async def run_to_exit(command: list[str], env: dict[str, str] | None = None) -> Finished:
    """Run a command that is expected to end by itself; a hang fails the test."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or process_env(),
        cwd=REPO,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(
            f"{Path(command[0]).name} kept running; it should have exited"
        ) from None
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


async def run_gateway(data: Path, *args: str, env: dict[str, str] | None = None) -> Finished:
    return await run_to_exit(
        gateway_command(data, "--demo", "--port", "0", "--log-level", "WARNING", *args), env
    )


async def run_desktop(data: Path, env: dict[str, str] | None = None) -> Finished:
    """pplex-desktop set to quit as soon as its window shows (if it gets that far)."""
    command = [str(BIN / "pplex-desktop"), "--data-dir", str(data), "--demo", "--port", "0"]
    return await run_to_exit(command, env or process_env(PPLEX_DESKTOP_EXIT_WHEN_SHOWN="1"))


@dataclass
class Desktop:
    proc: asyncio.subprocess.Process

    async def wait_for_log(self, text: str) -> str:
        """Read the app's log (stderr) until a line containing ``text``."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                line = (await self.proc.stderr.readline()).decode()
                if not line:
                    raise AssertionError(f"pplex-desktop ended before logging {text!r}")
                if text in line:
                    return line

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        assert self.proc.stderr is not None
        await asyncio.wait_for(self.proc.stderr.read(), EXIT_TIMEOUT_S)
        return await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT_S)


async def start_desktop(data: Path) -> Desktop:
    """pplex-desktop with its window up and its gateway listening."""
    command = [str(BIN / "pplex-desktop"), "--data-dir", str(data), "--demo", "--port", "0"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=process_env(),
        cwd=REPO,
    )
    desktop = Desktop(proc)
    await desktop.wait_for_log("The gateway listens on")
    return desktop


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a digest of its bytes: to prove nothing was touched.

    SQLite's -shm files are left out: every reader (the first process, the test) writes its
    read marks there; they hold no data.
    """
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if rel.endswith("-shm"):
            continue
        if path.is_dir():
            out[rel + "/"] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777
