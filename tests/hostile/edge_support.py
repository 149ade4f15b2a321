"""Helpers for the connection-level attacks: raw sockets, a gateway in its own process with a
small open-file limit, and scans of what it logged and answered for secrets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pplex_desktop.core.keystore import KeyStore

REPO = Path(__file__).resolve().parents[2]
ADMIN_SECRET = "hostile-admin-secret-0123456789"
DESKTOP_FILE_LIMIT = 1024  # a common desktop default (ulimit -n)


def raw_exchange(host: str, port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the gateway closes it."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(data)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise AssertionError(f"the gateway kept the connection open past {timeout_s} s")
        return b"".join(chunks)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


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


async def http_get(
    host: str, port: int, path: str, headers: dict[str, str] | None = None, limit_s: float = 5.0
) -> tuple[int, bytes, float]:
    """One GET on a fresh connection: (status, body, seconds it took)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    async with asyncio.timeout(limit_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    status, _headers, body = split_response(raw)
    return status, body, loop.time() - start


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
