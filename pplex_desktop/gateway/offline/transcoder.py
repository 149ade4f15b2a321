"""Decoding uploads in worker processes, so hostile files cannot crash or block the gateway.

Workers (``pplex_desktop.moshi.transcode``) are started ahead of need and reused, because a
fresh interpreter with numpy and libsndfile costs a few hundred milliseconds. A worker that
crashes or runs past the timeout is killed and replaced; the caller gets a 422 naming the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pplex_desktop
from pplex_desktop.core.errors import PplexError, UnavailableError
from pplex_desktop.core.tasks import stop_task
from pplex_desktop.moshi.audiofile import InvalidAudioError
from pplex_desktop.moshi.codec import SAMPLE_RATE
from pplex_desktop.moshi.transcode import REPLY_TAG

_log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 120.0
_HIDDEN_ENV = ("PPLEX_ADMIN_SECRET",)


def child_env(extra_path: str | None = None) -> dict[str, str]:
    """The environment for helper processes: our package importable, no secrets."""
    env = {k: v for k, v in os.environ.items() if k not in _HIDDEN_ENV}
    paths = [str(Path(pplex_desktop.__file__).resolve().parents[1])]
    if extra_path:
        paths.insert(0, extra_path)
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@dataclass(frozen=True, slots=True)
class Decoded:
    samples: int  # at 24 kHz, mono
    format: str
    subtype: str
    sample_rate: int
    channels: int
    elapsed_s: float

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr: deque[str] = deque(maxlen=20)
        self._drain = asyncio.create_task(self._read_stderr(), name="transcode-stderr")

    @classmethod
    async def spawn(cls) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pplex_desktop.moshi.transcode",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(),
        )
        return cls(proc)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request; None if the worker died before it answered."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            await self.proc.stdin.drain()
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    return None
                text = line.decode("utf-8", "replace")
                if text.startswith(REPLY_TAG):
                    reply: dict[str, Any] = json.loads(text[len(REPLY_TAG) :])
                    return reply
        except (ConnectionError, BrokenPipeError):
            return None

    async def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()
        # Its stderr ends with the process; the last lines explain a failure, so let them in.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._drain)
        await stop_task(self._drain)

    async def close(self) -> None:
        if self.alive and self.proc.stdin is not None:
            self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):  # a worker that lingers is killed below
                async with asyncio.timeout(2.0):
                    await self.proc.wait()
        await self.kill()


class Transcoder:
    """A small pool of decoding workers, at most ``size`` decoding at once."""

    def __init__(self, size: int = 2, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._slots = asyncio.Semaphore(size)
        self._spawning: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def busy_pids(self) -> list[int]:
        """Process ids of the workers decoding right now."""
        return [w.proc.pid for w in self._busy]

    def prewarm(self) -> None:
        """Start a worker in the background while an upload is still arriving."""
        if self._idle or self._busy or self._spawning is not None or self._closed:
            return
        self._spawning = asyncio.create_task(self._spawn_idle(), name="transcoder-spawn")

    async def _spawn_idle(self) -> None:
        try:
            worker = await _Worker.spawn()
        except OSError as exc:
            _log.warning("The audio decoder process cannot be started: %s", exc)
            return
        finally:
            self._spawning = None
        if self._closed:
            await worker.kill()
        else:
            self._idle.append(worker)

    async def _take(self) -> _Worker:
        if self._spawning is not None:
            await asyncio.wait({self._spawning})
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            await worker.kill()
        try:
            return await _Worker.spawn()
        except OSError as exc:
            _log.error("The audio decoder process cannot be started: %s", exc)
            raise UnavailableError(
                "The gateway cannot start its audio decoder right now; try again shortly.",
                retry_after_s=5,
                code="decoder_unavailable",
            ) from None

    async def decode(self, source: Path, target: Path, *, max_seconds: float) -> Decoded:
        """Decode ``source`` into raw float32 24 kHz mono at ``target``, or raise a 4xx."""
        if self._closed:
            raise UnavailableError("The gateway is shutting down.", code="shutting_down")
        request = {"source": str(source), "target": str(target), "max_seconds": max_seconds}
        async with self._slots:
            worker = await self._take()
            self._busy.add(worker)
            keep = False
            try:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        reply = await worker.ask(request)
                except TimeoutError:
                    _log.warning(
                        "Decoding '%s' took longer than %g s; its worker was stopped.",
                        source.name,
                        self.timeout_s,
                    )
                    raise InvalidAudioError(
                        f"'{source.name}' took longer than {self.timeout_s:g} s to decode; it is "
                        "probably damaged."
                    ) from None
                if reply is None:
                    await worker.kill()
                    _log.warning(
                        "The audio decoder stopped (exit status %s) on '%s': %s",
                        worker.proc.returncode,
                        source.name,
                        " | ".join(list(worker.stderr)[-3:]) or "no message",
                    )
                    raise InvalidAudioError(
                        f"'{source.name}' made the audio decoder stop unexpectedly; the file is "
                        "probably damaged."
                    )
                keep = True
            finally:
                self._busy.discard(worker)
                if keep and not self._closed:
                    self._idle.append(worker)
                else:
                    await worker.kill()
        if not reply.get("ok"):
            raise PplexError(
                str(reply.get("message", "The audio could not be decoded.")),
                code=str(reply.get("code", "invalid_audio")),
                status=int(reply.get("status", 422)),
            )
        return Decoded(
            int(reply["samples"]),
            str(reply["format"]),
            str(reply["subtype"]),
            int(reply["sample_rate"]),
            int(reply["channels"]),
            float(reply["elapsed_s"]),
        )

    async def close(self) -> None:
        self._closed = True
        if self._spawning is not None:
            await asyncio.wait({self._spawning})
        workers, self._idle = self._idle + list(self._busy), []
        for worker in workers:
            await worker.close()
