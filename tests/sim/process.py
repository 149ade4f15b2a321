"""pplex-sim as its command runs: a real subprocess on a free port, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

READY_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SimProcess:
    process: asyncio.subprocess.Process
    ready_line: str  # what it printed once it listened
    url: str  # http://127.0.0.1:PORT, without /api/chat


@contextlib.asynccontextmanager
async def sim_process(*flags: str) -> AsyncIterator[SimProcess]:
    """Start ``python -m pplex_desktop.sim`` with ``flags`` and stop it on leaving.

    It must stop cleanly on SIGTERM, as a service manager stops it: a non-zero exit fails.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.sim",
        "--port",
        "0",
        "--prompt-delay",
        "0",
        "--log-level",
        "WARNING",
        *flags,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)).decode()
        if " listening on " not in line:
            raise RuntimeError(f"pplex-sim did not start: {line!r}")
        url = line.rsplit(" ", 1)[1].strip().removesuffix("/api/chat")
        yield SimProcess(proc, line, url)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            code = await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
    if code != 0:
        raise RuntimeError(f"pplex-sim exited with {code} when asked to stop.")
