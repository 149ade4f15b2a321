"""Record a short session with the real Kyutai server into ``tests/data/kyutai_session.jsonl``.

Usage, from the repository root: ``.venv/bin/python -m tests.conformance.record_fixture``.
It builds (or reuses) the conformance environment, starts the server, sends a few frames of a
tone and writes every message of both directions, byte for byte, one JSON object a line:
``{"dir": "in"|"out", "data": "<base64 of the whole message, kind byte included>"}`` after a
first line of ``{"meta": {...}}``. ``tests/unit/test_recorded_session.py`` reads it without
the conformance venv.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import tempfile
from pathlib import Path

import websockets

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from tests.conformance.kyutai_env import MOSHI_PIN, TORCH_PIN, KyutaiServer, prepare
from tests.signals import tone

OUT = Path(__file__).resolve().parents[1] / "data" / "kyutai_session.jsonl"
FRAMES = 12


async def record(url: str) -> list[tuple[str, bytes]]:
    log: list[tuple[str, bytes]] = []
    pcm = tone(440, FRAMES * FRAME_SAMPLES / 24_000)
    encoder = OpusEncoder()
    async with websockets.connect(url + "/api/chat", compression=None, proxy=None) as ws:
        handshake = await asyncio.wait_for(ws.recv(), 30)
        assert isinstance(handshake, bytes)
        log.append(("out", handshake))
        for i in range(FRAMES):
            message = proto.encode(
                proto.Audio(encoder.encode(pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]))
            )
            await ws.send(message)
            log.append(("in", message))
        # The server stops answering once it reads our close, so close only after the
        # FRAMES - 1 audio answers (see converse() in the conformance tests), then keep what
        # still comes. Replies interleave with our sends on the wire; recording them after
        # ours keeps each direction in order, which is all a stream needs.
        closing: asyncio.Task[None] | None = None
        answers = 0
        try:
            while True:
                reply = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(reply, bytes)
                log.append(("out", reply))
                answers += reply[:1] == b"\x01"
                if closing is None and answers == FRAMES - 1:
                    closing = asyncio.create_task(ws.close())
        except websockets.ConnectionClosedOK:
            pass
        assert closing is not None
        await closing
    return log


def main() -> None:
    env = prepare()
    with tempfile.TemporaryDirectory() as tmp:
        server = KyutaiServer(env, Path(tmp) / "server.log")
        server.start()
        try:
            log = asyncio.run(record(server.url))
        finally:
            server.stop()
    meta = {
        "server": f"{MOSHI_PIN} (python -m moshi.server), {TORCH_PIN} CPU, tiny random weights",
        "input": f"{FRAMES} frames of a 440 Hz tone, sent before reading any reply",
        "regenerate": "python -m tests.conformance.record_fixture",
    }
    lines = [json.dumps({"meta": meta})]
    lines += [
        json.dumps({"dir": direction, "data": base64.b64encode(data).decode("ascii")})
        for direction, data in log
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"Wrote {len(log)} messages ({OUT.stat().st_size} bytes) to {OUT}.", file=sys.stderr)


if __name__ == "__main__":
    main()
