"""Offline inference speed, measured against references in the same run.

1. Throughput: a 60 s speech file (espeak-ng, 16 kHz mono) through POST /v1/inference to
   pplex-sim in its own process with no compute delay, in multiples of real time: end to end
   (upload, decode, stream through the model server, write, download) and the engine alone
   (the job's start to finish).
2. Upload overhead: a 10 MB WAV (44.1 kHz stereo) to POST /v1/jobs (receive, spool, validate,
   decode to 24 kHz mono, queue) against a plain aiohttp handler that writes the body to disk,
   same client, same machine, as a ratio; the decode alone is timed too.

    .venv/bin/python -m bench.offline
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf
from aiohttp import web

from bench.common import save, summary
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.server import GatewayRunner
from tests.sim.process import sim_process

RUNS = 5
SPEECH_S = 60.0
UPLOAD_RUNS = 7
TEXT = (
    "Offline inference streams a recorded file through the speech model as fast as the "
    "server accepts it. The gateway collects the audio and the words that come back, and "
    "writes them next to the job, so the desktop can show them when the batch is done. "
)


def speech(folder: Path, seconds: float, rate: int) -> Path:
    raw = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), TEXT * 4], check=True, capture_output=True)
    voice, voice_rate = sf.read(raw, dtype="float32")
    reps = int(np.ceil(seconds * voice_rate / len(voice)))
    tiled = np.tile(voice, reps)[: int(seconds * voice_rate)]
    path = folder / "speech-24k.wav"
    sf.write(path, tiled, voice_rate)
    out = folder / "speech.wav"
    subprocess.run(["sox", str(path), "-r", str(rate), str(out)], check=True)
    return out


def ten_megabytes(folder: Path) -> Path:
    rate, seconds = 44_100, 10 * 1024 * 1024 / (44_100 * 4)
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    path = folder / "ten-mb.wav"
    sf.write(path, np.stack([x, x], axis=1), rate, subtype="PCM_16")
    return path


def multipart(path: Path) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("audio", io.BytesIO(path.read_bytes()), filename=path.name)
    return data


async def throughput(folder: Path, store: KeyStore, key: str) -> dict[str, Any]:
    async with sim_process() as sim:
        settings = Settings(port=0, backends=(BackendConfig(sim.url),))
        runner = GatewayRunner(settings, store)
        await runner.start()
        assert runner.address is not None
        url = runner.address.url
        source = speech(folder, SPEECH_S, 16_000)
        end_to_end: list[float] = []
        engine: list[float] = []
        cpu: list[float] = []
        async with aiohttp.ClientSession() as http:
            for _ in range(RUNS):
                cpu_start = time.process_time()
                start = time.perf_counter()
                async with http.post(
                    url + "/v1/inference",
                    headers={"X-API-Key": key},
                    data=multipart(source),
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    job_id = resp.headers["X-Job-Id"]
                    await resp.read()
                end_to_end.append(time.perf_counter() - start)
                cpu.append(time.process_time() - cpu_start)
                async with http.get(url + f"/v1/jobs/{job_id}", headers={"X-API-Key": key}) as resp:
                    job = await resp.json()
                engine.append(job["finished_at"] - job["started_at"])
        await runner.stop()
    answer_s = SPEECH_S + settings.offline_silence_s
    e2e, eng = statistics.median(end_to_end), statistics.median(engine)
    return {
        "input_s": SPEECH_S,
        "silence_s": settings.offline_silence_s,
        "end_to_end_s": summary(end_to_end),
        "engine_s": summary(engine),
        "realtime_x_end_to_end": SPEECH_S / e2e,
        "realtime_x_engine": SPEECH_S / eng,
        "model_audio_x_engine": answer_s / eng,
        # CPU of the gateway's process (client included) per second of model audio: unlike
        # wall time, it does not depend on what else the machine is doing.
        "gateway_cpu_ms_per_audio_s": statistics.median(cpu) / answer_s * 1000,
        "load_average_1min": os.getloadavg()[0],
    }


async def plain_server(folder: Path) -> tuple[web.AppRunner, str]:
    async def upload(request: web.Request) -> web.Response:
        path = folder / "plain-upload.bin"
        with path.open("wb") as handle:
            async for chunk in request.content.iter_chunked(256 * 1024):
                handle.write(chunk)
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/upload"


async def upload_overhead(folder: Path, store: KeyStore, key: str) -> dict[str, Any]:
    # No model server answers here: accepted jobs just wait, and are deleted after timing.
    settings = Settings(port=0, backends=(BackendConfig("ws://127.0.0.1:9"),))
    runner = GatewayRunner(settings, store)
    await runner.start()
    assert runner.address is not None
    url = runner.address.url + "/v1/jobs"
    headers = {"X-API-Key": key}
    plain, plain_url = await plain_server(folder)
    source = ten_megabytes(folder)
    timings: dict[str, list[float]] = {"plain": [], "spool": [], "accept": []}
    async with aiohttp.ClientSession() as http:
        for _ in range(UPLOAD_RUNS):
            start = time.perf_counter()
            async with http.post(plain_url, data=multipart(source)) as resp:
                assert resp.status == 200
                await resp.read()
            timings["plain"].append(time.perf_counter() - start)
            # A field checked once the body is spooled, before decoding: receive + spool only.
            spool_only = multipart(source)
            spool_only.add_field("format", "not-a-format")
            start = time.perf_counter()
            async with http.post(url, headers=headers, data=spool_only) as resp:
                assert resp.status == 400, await resp.text()
                await resp.read()
            timings["spool"].append(time.perf_counter() - start)
            start = time.perf_counter()
            async with http.post(url, headers=headers, data=multipart(source)) as resp:
                assert resp.status == 202, await resp.text()
                job = await resp.json()
            timings["accept"].append(time.perf_counter() - start)
            async with http.delete(job["url"], headers=headers) as resp:
                await resp.read()
    await plain.cleanup()
    await runner.stop()
    plain_p50 = statistics.median(timings["plain"])
    return {
        "upload_mb": source.stat().st_size / 1024**2,
        "plain_s": summary(timings["plain"]),
        "gateway_spool_s": summary(timings["spool"]),
        "gateway_accept_s": summary(timings["accept"]),
        "spool_ratio_p50": statistics.median(timings["spool"]) / plain_p50,
        "accept_ratio_p50": statistics.median(timings["accept"]) / plain_p50,
    }


async def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = KeyStore(folder / "pplex.sqlite3", default_rpm=100_000)
        key = store.create("bench", rpm=100_000).key
        speed = await throughput(folder, store, key)
        shutil.rmtree(folder / "jobs", ignore_errors=True)
        overhead = await upload_overhead(folder, store, key)
        store.close()
    return {"throughput": speed, "upload": overhead}


def main() -> None:
    result = asyncio.run(run())
    save("offline", result)
    t, u = result["throughput"], result["upload"]
    print(
        f"60 s of speech through pplex-sim: x{t['realtime_x_end_to_end']:.1f} real time end to "
        f"end (p50 {t['end_to_end_s']['p50']:.2f} s), x{t['realtime_x_engine']:.1f} for the "
        f"engine alone (p50 {t['engine_s']['p50']:.2f} s for {t['input_s'] + t['silence_s']:g} s "
        f"of model audio); gateway CPU {t['gateway_cpu_ms_per_audio_s']:.1f} ms per second of "
        f"audio; load average {t['load_average_1min']:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"{u['upload_mb']:.1f} MB upload vs a plain aiohttp handler writing it to disk "
        f"({u['plain_s']['p50'] * 1000:.0f} ms): receive + spool + checks "
        f"{u['gateway_spool_s']['p50'] * 1000:.0f} ms (x{u['spool_ratio_p50']:.2f}); with "
        f"decoding to 24 kHz mono and queueing {u['gateway_accept_s']['p50'] * 1000:.0f} ms "
        f"(x{u['accept_ratio_p50']:.2f})"
    )


if __name__ == "__main__":
    main()
