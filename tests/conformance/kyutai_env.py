"""The real Kyutai ``moshi.server`` from PyPI, on this CPU, with tiny random weights.

Two steps, usable from pytest (``conftest.py``) and from ``record_fixture.py``:

- :func:`prepare` builds, once, a cache folder holding a virtual environment with ``moshi``
  (installed ``--no-deps``: its pins ask for an older torch, aiohttp and numpy), its real runtime
  dependencies, the local CPU torch wheel, and the tiny assets made by ``build_assets.py``.
  The folder's name is a digest of everything that goes into it, so changing a pin, this file
  or the asset builder builds a fresh one.
- :class:`KyutaiServer` starts ``python -m moshi.server`` on a free port through
  ``launch_server.py`` and stops it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
# Bump when the way the venv is built changes; pins and build_assets.py are hashed anyway.
CACHE_VERSION = "1"
TORCH_PIN = "torch==2.13.0"
MOSHI_PIN = "moshi==0.2.13"
# What moshi.server and the modules it loads import, at releases that work with torch 2.13
# (moshi asks for numpy<2.3, aiohttp<3.12, huggingface-hub<1, which are not needed).
RUNTIME_PINS = (
    "numpy==2.4.6",
    "safetensors==0.8.0",
    "huggingface_hub==2.4.0",
    "einops==0.8.2",
    "sentencepiece==0.2.3",
    "sphn==0.2.1",
    "aiohttp==3.14.5",
)
PIP_TIMEOUT_S = 900.0
ASSETS_TIMEOUT_S = 300.0
STALE_AFTER_S = 3 * 24 * 3600.0
FRAME_LOG = re.compile(r"frame handled in ([0-9.]+)\s*ms")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class EnvironmentUnavailable(RuntimeError):
    """The conformance venv cannot be built here (the tier skips, saying why)."""


class ServerFailed(RuntimeError):
    """The real server did not start or misbehaved (the tier fails: that is a finding)."""


def cache_root() -> Path:
    override = os.environ.get("PPLEX_CONFORMANCE_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "pplex-desktop" / "conformance"


def cache_key() -> str:
    digest = hashlib.sha256()
    for part in (CACHE_VERSION, TORCH_PIN, MOSHI_PIN, *RUNTIME_PINS, sys.version.split()[0]):
        digest.update(part.encode() + b"\0")
    digest.update((HERE / "build_assets.py").read_bytes())
    return f"kyutai-{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class Prepared:
    """A ready cache folder and what it took to get it."""

    root: Path
    built: bool
    seconds: float

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def assets(self) -> Path:
        return self.root / "assets"


def _run(cmd: list[str], log: IO[str], timeout: float, what: str) -> None:
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    try:
        result = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentUnavailable(f"{what} took longer than {timeout:g} s") from None
    if result.returncode != 0:
        raise EnvironmentUnavailable(f"{what} failed with exit code {result.returncode}")


def _last_error(path: Path) -> str:
    """The line of a build log that says what went wrong, as far as a line can."""
    try:
        lines = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace")).splitlines()
    except OSError:
        return ""
    errors = [line.strip() for line in lines if line.lstrip().startswith("ERROR")]
    rest = [line.strip() for line in lines if line.strip()]
    return (errors or rest or [""])[0]


def _build(root: Path, log: IO[str]) -> None:
    venv = root / "venv"
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([sys.executable, "-m", "venv", str(venv)], log, 120, "Creating the venv")
    # --no-index: the CPU wheel must come from this machine's wheel folder, never a download
    # of a multi-gigabyte CUDA build from the index.
    try:
        _run(
            [*pip, "install", "--no-index", "--no-deps", TORCH_PIN],
            log,
            PIP_TIMEOUT_S,
            f"Installing {TORCH_PIN} from local wheels",
        )
    except EnvironmentUnavailable as exc:
        raise EnvironmentUnavailable(
            f"the CPU wheel for {TORCH_PIN} is not available locally ({exc}; pip's find-links "
            "must hold torch-2.13.0+cpu for this Python)"
        ) from None
    _run(
        [*pip, "install", TORCH_PIN, *RUNTIME_PINS],
        log,
        PIP_TIMEOUT_S,
        "Installing torch's and moshi's runtime dependencies",
    )
    _run([*pip, "install", "--no-deps", MOSHI_PIN], log, PIP_TIMEOUT_S, f"Installing {MOSHI_PIN}")
    try:
        _run(
            [python, "-I", str(HERE / "build_assets.py"), str(root / "assets")],
            log,
            ASSETS_TIMEOUT_S,
            "Building the tiny random model assets",
        )
    except EnvironmentUnavailable as exc:
        # The venv is there: failing to build assets with it is a finding, not a skip.
        raise ServerFailed(str(exc)) from None


def _remove_stale(base: Path, keep: Path) -> None:
    now = time.time()
    for other in base.glob("kyutai-*"):
        stamp = other / "last-used"
        if other == keep or not stamp.exists():
            continue
        if now - stamp.stat().st_mtime > STALE_AFTER_S:
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare() -> Prepared:
    """Return the cached environment, building it first if needed (minutes, once)."""
    base = cache_root()
    root = base / cache_key()
    ready = root / "READY"
    started = time.monotonic()
    with _locked(base):
        built = False
        if not ready.exists():
            if root.exists():
                shutil.rmtree(root)  # a build that was interrupted
            root.mkdir(parents=True)
            log_path = root / "build.log"
            try:
                with log_path.open("w", encoding="utf-8") as log:
                    _build(root, log)
            except (EnvironmentUnavailable, ServerFailed) as exc:
                # Keep the log for the reader; the half-built venv is gigabytes of nothing.
                shutil.rmtree(root / "venv", ignore_errors=True)
                detail = f"{exc}: {_last_error(log_path)} (full log: {log_path})"
                raise type(exc)(detail) from None
            seconds = time.monotonic() - started
            ready.write_text(json.dumps({"build_seconds": round(seconds, 1)}), encoding="utf-8")
            built = True
        (root / "last-used").touch()
        _remove_stale(base, root)
    return Prepared(root, built, time.monotonic() - started)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Report:
    """What the tier saw, for the summary at the end of a pytest run."""

    env: Prepared | None = None
    skip_reason: str | None = None
    build_error: str | None = None
    server_start_seconds: float | None = None
    frame_times_ms: list[float] = field(default_factory=list)
    round_trips_ms: list[float] = field(default_factory=list)
    # Lock-step round trips of the same client, interleaved in one test: direct and via gateway.
    paired_direct_ms: list[float] = field(default_factory=list)
    paired_gateway_ms: list[float] = field(default_factory=list)
    paired_load: float | None = None  # the 1-minute load average after that test


class KyutaiServer:
    """One ``moshi.server`` process with its output in a log file."""

    def __init__(self, env: Prepared, log_path: Path, host: str = "127.0.0.1") -> None:
        self.env = env
        self.host = host
        self.port = free_port()
        self.log_path = log_path
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def command(self) -> list[str]:
        a = self.env.assets
        return [
            str(self.env.python),
            "-I",
            "-u",
            str(HERE / "launch_server.py"),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--static",
            "none",
            "--tokenizer",
            str(a / "tokenizer.model"),
            "--moshi-weight",
            str(a / "moshi.safetensors"),
            "--mimi-weight",
            str(a / "mimi.safetensors"),
            "--config-path",
            str(a / "config.json"),
        ]

    def start(self, timeout: float = 90.0) -> None:
        started = time.monotonic()
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = started + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerFailed(
                    f"moshi.server exited with code {code} while starting. Its log:\n"
                    f"{self.log_tail(40)}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(
                    f"moshi.server did not listen on port {self.port} within {timeout:g} s. "
                    f"Its log:\n{self.log_tail(40)}"
                )
            time.sleep(0.2)  # polling the port, bounded by the deadline above
        self.start_seconds = time.monotonic() - started

    def stop(self, timeout: float = 15.0) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        return proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        try:
            return ANSI.sub("", self.log_path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def frame_times_ms(self) -> list[float]:
        return [float(m) for m in FRAME_LOG.findall(self.log_text())]

    def count(self, line: str) -> int:
        return sum(1 for entry in self.log_text().splitlines() if entry.endswith(line))

    async def wait_for_count(self, line: str, count: int, within: float) -> None:
        """Wait until the log holds ``count`` lines ending with ``line``.

        The server's log file is the only signal it gives (no event to await), so this polls,
        bounded by ``within`` seconds."""
        async with asyncio.timeout(within):
            while self.count(line) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    async def wait_for_frames(self, count: int, within: float) -> None:
        """Wait until the server has logged ``count`` handled frames in all (polling its log,
        as :meth:`wait_for_count`). It logs a frame after sending what the frame produced."""
        async with asyncio.timeout(within):
            while len(self.frame_times_ms()) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
