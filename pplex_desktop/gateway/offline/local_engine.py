"""The local engine: PersonaPlex's own offline script, run from PERSONAPLEX_REPO.

``python -m moshi.offline --voice-prompt NATF2.pt --text-prompt ... --input-wav in.wav
--output-wav out.wav --output-text out.json [--seed N]`` loads the whole model for each run
(minutes on a GPU), so runs are serialised and bounded by ``local_engine_timeout_s``. The script
writes one text token per 80 ms frame to its JSON, with 'PAD', 'EPAD', 'BOS' and 'EOS' for
frames without a word, and logs a "text token" line per frame, which gives the progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import deque
from pathlib import Path

import numpy as np

from pplex_desktop.core.jobstore import Job
from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.offline.results import (
    EngineError,
    EngineResult,
    Piece,
    Reporter,
    fit,
    piece_at,
)
from pplex_desktop.gateway.offline.transcoder import child_env
from pplex_desktop.moshi.audiofile import read_mono, write_wav
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE, Pcm

_log = logging.getLogger(__name__)
MARKERS = frozenset({"PAD", "EPAD", "BOS", "EOS"})
TAIL_LINES = 30
ERROR_TAIL_CHARS = 600


def package_root(repo: str) -> Path:
    """The folder holding the ``moshi`` package: the checkout itself or its ``moshi/`` project."""
    base = Path(repo).expanduser()
    for candidate in (base / "moshi", base):
        if (candidate / "moshi" / "offline.py").is_file():
            return candidate
    raise EngineError(
        f"The local engine is misconfigured: PERSONAPLEX_REPO ({repo}) holds no "
        "moshi/offline.py; the operator should point it at a PersonaPlex checkout.",
        code="engine_unavailable",
        status=503,
    )


def read_tokens(path: Path) -> tuple[Piece, ...]:
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(
            f"The local engine's text output cannot be read: {exc}.", code="local_engine_failed"
        ) from None
    if not isinstance(tokens, list):
        raise EngineError(
            "The local engine's text output is not a list of tokens.", code="local_engine_failed"
        )
    return tuple(
        piece_at(index, token)
        for index, token in enumerate(tokens)
        if isinstance(token, str) and token not in MARKERS
    )


def _prepare_input(pcm: Pcm, target: int, path: Path) -> None:
    write_wav(path, fit(np.asarray(pcm, dtype=np.float32), target), SAMPLE_RATE, "FLOAT")


def _read_output(path: Path, target: int) -> Pcm:
    try:
        return fit(read_mono(path), target)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineError(
            f"The local engine's audio output cannot be read: {exc}", code="local_engine_failed"
        ) from None


class LocalEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._one_at_a_time = asyncio.Lock()  # each run loads the whole model onto the GPU

    def _command(self, job: Job, folder: Path) -> list[str]:
        python = self.settings.personaplex_python or sys.executable
        command = [
            python,
            "-m",
            "moshi.offline",
            "--voice-prompt",
            job.voice,
            "--text-prompt",
            job.persona,
            "--input-wav",
            str(folder / "local-input.wav"),
            "--output-wav",
            str(folder / "local-output.wav"),
            "--output-text",
            str(folder / "local-output.json"),
        ]
        folder_of_voice = self._voice_folder(job.voice)
        if folder_of_voice is not None:
            # Upstream offline.py joins --voice-prompt to --voice-prompt-dir, which defaults to
            # the downloaded built-in voices; a custom WAV lives in the backend's voice folder.
            command += ["--voice-prompt-dir", folder_of_voice]
        if job.seed is not None:
            command += ["--seed", str(job.seed)]
        return command

    def _voice_folder(self, voice: str) -> str | None:
        if not voice.endswith(".wav"):
            return None
        for backend in self.settings.backends:
            if backend.voice_dir and (Path(backend.voice_dir) / voice).is_file():
                return backend.voice_dir
        return None

    async def run(self, job: Job, folder: Path, pcm: Pcm, report: Reporter) -> EngineResult:
        assert self.settings.personaplex_repo is not None
        root = package_root(self.settings.personaplex_repo)
        target = round(job.target_s * SAMPLE_RATE)
        await asyncio.to_thread(_prepare_input, pcm, target, folder / "local-input.wav")
        report.stage("waiting")
        async with self._one_at_a_time:
            report.stage("running")
            await self._execute(job, folder, root, target, report)
        pcm_out = await asyncio.to_thread(_read_output, folder / "local-output.wav", target)
        pieces = await asyncio.to_thread(read_tokens, folder / "local-output.json")
        return EngineResult(pcm_out, pieces)

    async def _execute(
        self, job: Job, folder: Path, root: Path, target: int, report: Reporter
    ) -> None:
        frames = max(1, -(-target // FRAME_SAMPLES))
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command(job, folder),
                cwd=root,
                env=child_env(str(root)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # so a timeout can stop the script and its children
                limit=1024 * 1024,  # a traceback line may be long
            )
        except OSError as exc:
            raise EngineError(
                f"The local engine cannot be started: {exc}.", code="local_engine_failed"
            ) from None
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        timeout = self.settings.local_engine_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._follow(proc, tail, frames, report)
                code = await proc.wait()
        except TimeoutError:
            raise EngineError(
                f"The local engine did not finish within {timeout:g} s.",
                code="local_engine_timeout",
                status=504,
            ) from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if code != 0:
            text = "\n".join(tail).strip()[-ERROR_TAIL_CHARS:] or "no output"
            _log.warning("The local engine failed on job %s with exit status %d.", job.id, code)
            raise EngineError(
                f"The local PersonaPlex engine failed (exit status {code}): {text}",
                code="local_engine_failed",
            )

    @staticmethod
    async def _follow(
        proc: asyncio.subprocess.Process, tail: deque[str], frames: int, report: Reporter
    ) -> None:
        assert proc.stdout is not None
        steps = 0
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            if "text token" in line:
                steps += 1
                if steps % 10 == 0:
                    report.progress(min(0.99, steps / frames))
