"""A worker process that turns uploaded audio files into 24 kHz mono float32 spool files.

libsndfile and soxr are native code reading untrusted bytes: a crash, a hang or a runaway
allocation there must cost one worker process, never the gateway. The gateway keeps a few of
these warm (``python -m pplex_desktop.moshi.transcode``) and talks to each over its pipes, one
request at a time: a JSON line in, a reply line tagged with ``REPLY_TAG`` out (anything else a
native library prints is not a reply).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pplex_desktop.core.errors import PplexError
from pplex_desktop.moshi.audiofile import InvalidAudioError, iter_mono, probe
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE

REPLY_TAG = "@@pplex-transcode "
MEMORY_LIMIT_BYTES = 3 * 1024**3
MIN_SAMPLES = FRAME_SAMPLES  # one model frame (80 ms): anything shorter holds no conversation


def transcode(source: Path, target: Path, *, max_seconds: float) -> dict[str, Any]:
    """Decode ``source`` to raw little-endian float32 at 24 kHz mono in ``target``."""
    started = time.perf_counter()
    info = probe(source)
    samples = 0
    with target.open("wb") as out:
        for block in iter_mono(source, max_seconds=max_seconds, info=info):
            out.write(block.astype("<f4", copy=False).tobytes())
            samples += block.shape[0]
    if samples < MIN_SAMPLES:
        raise InvalidAudioError(
            f"'{source.name}' holds only {samples / SAMPLE_RATE * 1000:.1f} ms of audio; send "
            f"at least {MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms."
        )
    return {
        "samples": samples,
        "format": info.format,
        "subtype": info.subtype,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "elapsed_s": time.perf_counter() - started,
    }


def _sentence(text: str) -> str:
    """libsndfile's own messages end with a full stop, ours add one: keep exactly one."""
    return text.rstrip(" .") + "."


def handle(request: dict[str, Any]) -> dict[str, Any]:
    source = Path(str(request["source"]))
    try:
        result = transcode(
            source, Path(str(request["target"])), max_seconds=float(request["max_seconds"])
        )
    except PplexError as exc:
        return {
            "ok": False,
            "status": exc.status,
            "code": exc.code,
            "message": _sentence(exc.message),
        }
    except (MemoryError, OSError, ValueError, RuntimeError) as exc:
        return {
            "ok": False,
            "status": 422,
            "code": "invalid_audio",
            # The exception's own text may hold the spool path: only its kind is told.
            "message": _sentence(f"'{source.name}' could not be decoded ({type(exc).__name__})"),
        }
    return {"ok": True, **result}


def _limit_resources() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass  # not on this platform: the gateway's timeout still bounds the damage
    if hasattr(os, "nice"):
        os.nice(5)  # decoding is batch work: live sessions come first for the CPU


def main() -> int:
    _limit_resources()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            reply = handle(request)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            reply = {"ok": False, "status": 400, "code": "bad_request", "message": str(exc)}
        sys.stdout.write(REPLY_TAG + json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
