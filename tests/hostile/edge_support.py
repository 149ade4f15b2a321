"""Helpers for the connection-level attacks: a gateway in its own process with a small
open-file limit, and scans of what it logged and answered for secrets. The raw sockets are
tests/raw_http.py's."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pplex_desktop.core.keystore import KeyStore
from tests.hostile.store_support import ADMIN_SECRET, REPO
from tests.raw_http import host_port

DESKTOP_FILE_LIMIT = 1024  # a common desktop default (ulimit -n)


@contextlib.contextmanager
def raised_file_limit(needed: int) -> Iterator[None]:
    """The test process needs more sockets than a desktop default allows: raise the soft limit
    up to the hard one, or skip when even that is too low."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test holds {needed} sockets; the hard open-file limit is {hard}")
    wanted = needed if hard == resource.RLIM_INFINITY else min(max(soft, needed), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    key: str
    lan_url: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        return host_port(self.url)

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    return proc.stdout.readline() if ready else b""


def start_gateway_process(
    folder: Path,
    settings: dict[str, object],
    file_limit: int = DESKTOP_FILE_LIMIT,
    extra_args: tuple[str, ...] = (),
) -> GatewayProcess:
    """``pplex-gateway --demo`` on a free loopback port, limited to ``file_limit`` open files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    store = KeyStore.in_folder(folder)
    try:
        key = store.create("hostile-edge", rpm=100_000).key
    finally:
        store.close()

    def limit_files() -> None:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = file_limit if hard == resource.RLIM_INFINITY else min(file_limit, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (cap, hard))

    log_path = folder / "gateway.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PPLEX_ADMIN_SECRET": ADMIN_SECRET}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "pplex_desktop.gateway", "--demo", "--port", "0"),
                *("--data-dir", str(folder), "--host", "127.0.0.1"),
                *extra_args,
            ],
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() then sees every line that is not read yet
            stderr=log,
            env=env,
            preexec_fn=limit_files,  # noqa: PLW1509 (only sets a resource limit)
        )
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline and b"listening on" not in line:
        line = _read_line(proc, deadline)
        if not line:
            break
    if b"listening on" not in line:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"pplex-gateway did not start: {log_path.read_text()[-2000:]}")
    url = line.decode().split("listening on ", 1)[1].split(" ", 1)[0]
    lan_url = None
    if "--tls" in extra_args:
        lan = _read_line(proc, deadline).decode()
        lan_url = lan.split("HTTPS on ", 1)[1].split(": open", 1)[0]
    return GatewayProcess(proc, url, log_path, key, lan_url)


def assert_no_secret(texts: Sequence[str | bytes], *secrets: str) -> None:
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        for secret in secrets:
            if secret.encode() in data:
                at = data.index(secret.encode())
                where = data[max(0, at - 120) : at].decode("utf-8", "replace")
                raise AssertionError(f"a secret appears in a log line or an answer after {where!r}")


def gateway_log(records: list[logging.LogRecord]) -> list[str]:
    """What the gateway logged (the test's own clients, websockets among them, log their
    requests, keys included, at DEBUG)."""
    ours = ("pplex_desktop", "aiohttp", "asyncio")
    return [logging.Formatter().format(r) for r in records if r.name.startswith(ours)]
