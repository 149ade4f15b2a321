"""What /v1/realtime adds per 80 ms frame, against /ws/stream, in the same run.

One ``pplex-gateway --demo`` process (its simulated model echoes each frame through Opus), and
this script as one paced client (one 80 ms frame every 80 ms) that alternates between the two
endpoints round by round. The round trip of a frame is from sending it to receiving the k-th
audio chunk back (the echo of frame k: both endpoints answer one chunk per frame); the
realtime endpoint adds JSON, base64 and its pacer on top of the same Opus work.

    .venv/bin/python -m bench.realtime [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.common import save, summary
from pplex_desktop.moshi.codec import FRAME_SAMPLES, FRAME_SECONDS

ADMIN = "bench-admin-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _frame(i: int) -> np.ndarray:
    t = (np.arange(FRAME_SAMPLES) + i * FRAME_SAMPLES) / 24_000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _pcm16(pcm: np.ndarray) -> bytes:
    return (pcm * 32767).astype("<i2").tobytes()


def _loud(chunk: bytes) -> bool:
    """An echoed frame of ours (a 0.3 sine, RMS 0.21), not silence the pacer filled in."""
    pcm = np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768
    return bool(pcm.size) and float(np.sqrt(np.mean(pcm**2))) > 0.15


async def _stream(http: aiohttp.ClientSession, base: str, key: str, seconds: float) -> list[float]:
    count = int(seconds / FRAME_SECONDS)
    sent: list[float] = []
    rtts: list[float] = []
    url = f"{base}/ws/stream?api_key={key}"
    async with http.ws_connect(url, compress=0) as ws:
        while json.loads((await ws.receive()).data)["type"] != "ready":
            pass
        loop = asyncio.get_running_loop()

        async def send() -> None:
            start = loop.time()
            for i in range(count):
                await asyncio.sleep(max(0.0, start + i * FRAME_SECONDS - loop.time()))
                sent.append(loop.time())
                await ws.send_bytes(_pcm16(_frame(i)))

        sender = asyncio.create_task(send())
        got = 0
        while got < count - 6:  # the demo echoes 4 frames late; the last ones never return
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type is aiohttp.WSMsgType.BINARY and _loud(msg.data):
                if got < len(sent):
                    rtts.append((loop.time() - sent[got]) * 1000)
                got += 1
        await sender
    return rtts


async def _realtime(
    http: aiohttp.ClientSession, base: str, key: str, seconds: float
) -> list[float]:
    count = int(seconds / FRAME_SECONDS)
    sent: list[float] = []
    rtts: list[float] = []
    url = f"{base}/v1/realtime?response_mode=continuous"
    async with http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws:
        loop = asyncio.get_running_loop()
        append = {"type": "input_audio_buffer.append", "audio": ""}
        # The first append takes the model's slot; wait until it is live.
        await ws.send_str(json.dumps({**append, "audio": base64.b64encode(b"\0\0").decode()}))
        while json.loads((await ws.receive()).data)["type"] != "response.created":
            pass

        async def send() -> None:
            start = loop.time()
            for i in range(count):
                await asyncio.sleep(max(0.0, start + i * FRAME_SECONDS - loop.time()))
                audio = base64.b64encode(_pcm16(_frame(i))).decode()
                sent.append(loop.time())
                await ws.send_str(json.dumps({**append, "audio": audio}))

        sender = asyncio.create_task(send())
        got = 0
        while got < count - 6:  # the demo echoes 4 frames late; the last ones never return
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            event: dict[str, Any] = json.loads(msg.data)
            if event["type"] != "response.output_audio.delta":
                continue
            if not _loud(base64.b64decode(event["delta"])):
                continue  # silence the pacer filled in, not one of our frames
            if got < len(sent):
                rtts.append((loop.time() - sent[got]) * 1000)
            got += 1
        await sender
    return rtts


async def run(seconds: float, rounds: int) -> dict[str, Any]:
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="pplex-bench-rt-")
    env = {**os.environ, "PPLEX_DATA_DIR": folder, "PPLEX_ADMIN_SECRET": ADMIN}
    gateway = subprocess.Popen(  # noqa: ASYNC220 (started once, before any timing)
        [str(Path(sys.executable).with_name("pplex-gateway")), "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gateway.stderr is not None
        for line in gateway.stderr:
            if "The gateway listens on" in line:
                break
        base = f"ws://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"http://127.0.0.1:{port}/admin/keys/generate",
                headers={"X-Admin-Secret": ADMIN},
                json={"name": "bench", "rpm": 10_000, "max_sessions": 4},
            ) as response:
                key = (await response.json())["key"]
            stream: list[list[float]] = []
            realtime: list[list[float]] = []
            for _ in range(rounds):
                stream.append(await _stream(http, base, key, seconds))
                realtime.append(await _realtime(http, base, key, seconds))
    finally:
        gateway.terminate()
        gateway.wait(10)
    s_all = [x for r in stream for x in r]
    r_all = [x for r in realtime for x in r]
    added = [
        statistics.median(r) - statistics.median(s) for s, r in zip(stream, realtime, strict=True)
    ]
    return {
        "seconds_per_run": seconds,
        "rounds": rounds,
        "load_average_1min": os.getloadavg()[0],
        "ws_stream_ms": summary(s_all),
        "realtime_ms": summary(r_all),
        "realtime_added_p50_ms_per_round": added,
        "realtime_added_p50_ms": statistics.median(added),
        "realtime_added_p99_ms": summary(r_all)["p99"] - summary(s_all)["p99"],
        "note": "round trip per 80 ms frame through pplex-gateway --demo (Opus echo), one "
        "paced client; the realtime figure includes JSON and base64 on both ends",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    result = asyncio.run(run(args.seconds, args.rounds))
    path = save("realtime", result)
    print(json.dumps(result, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
