"""Latency the gateway adds to live audio, against a direct connection and against nginx.

Three processes, as in production: N simulated model servers (raw echo: each audio message
comes straight back, so the round trip measures the path, not a model), the gateway (or nginx
as a plain WebSocket reverse proxy), and this script as N paced clients (one 80 ms message
every 80 ms, the sessions' phases spread over one frame as independent speakers' would be).
For 1, 10 and 50 concurrent sessions it measures the round trip per audio message
direct to the backends, through pplex-gateway and through nginx, in the same run; the gateway's
added latency is its round trip minus the direct one. Also the gateway's CPU time per relayed
message and its memory per session.

One more row, in the same run: the live round trip through the gateway while a 10-minute offline
job (a synthetic WAV through POST /v1/jobs) streams through a model server of its own (a voice
only it offers keeps live sessions off it), faster than real time (--job-speed, 8x by default,
like a fast GPU; 0 for as fast as an echo answers, which saturates the gateway), against the
same sessions without the job; rounds alternate so drift hits both.
The gateway's loop must not let the job's work delay live audio (goal: at most +5 ms p99).

nginx is an optional comparison: without it installed the nginx column is left out, and the
output and the result file say so.

    .venv/bin/python -m bench.proxy [--seconds 10] [--sessions 1,10,50] [--job-sessions 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from bench.common import save, summary
from pplex_desktop.core.settings import BackendConfig, Settings, save_settings
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder

ADMIN = "bench-admin-secret-0123456789"
JOB_AUDIO_S = 600.0
JOB_VOICE = "BENCHJOB.pt"  # offered by the job's model server only
NO_NGINX = (
    "nginx is not installed, so this run has no nginx column; install nginx (apt-get install "
    "nginx) to compare the gateway against it."
)


def long_wav(folder: Path, seconds: float) -> Path:
    """A synthetic spoken-length input: a slowly swelling tone, 24 kHz mono 16-bit."""
    import soundfile as sf

    t = np.arange(int(seconds * 24_000)) / 24_000
    pcm = 0.2 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    path = folder / "long.wav"
    sf.write(path, pcm.astype(np.float32), 24_000, subtype="PCM_16")
    return path


class OfflineJob:
    """One long job on the gateway for the length of a round: sent, seen streaming, cancelled."""

    def __init__(
        self, http: aiohttp.ClientSession, base: str, key: str, wav: Path, speed: float
    ) -> None:
        self.http, self.base, self.wav, self.speed = http, base, wav, speed
        self.headers = {"X-API-Key": key}
        self.job_id: str | None = None

    async def state(self) -> dict[str, Any]:
        async with self.http.get(
            f"{self.base}/v1/jobs/{self.job_id}", headers=self.headers
        ) as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def start(self) -> float:
        """Send the file and return once the job streams; the seconds that took."""
        began = time.monotonic()
        with self.wav.open("rb") as handle:
            data = aiohttp.FormData()
            data.add_field("audio", handle, filename="long.wav", content_type="audio/wav")
            data.add_field("silence_s", "0")
            data.add_field("voice", JOB_VOICE)
            async with self.http.post(
                self.base + "/v1/jobs", headers=self.headers, data=data
            ) as resp:
                body = await resp.json()
                if resp.status != 202:
                    raise RuntimeError(f"The gateway refused the offline job: {body}")
        self.job_id = str(body["id"])
        for _ in range(600):
            job = await self.state()
            if job["state"] == "running" and job.get("progress", 0) > 0:
                return time.monotonic() - began
            if job["state"] in ("done", "failed", "cancelled"):
                raise RuntimeError(f"The offline job ended before it was measured: {job}")
            await asyncio.sleep(0.1)
        raise RuntimeError("The offline job did not start streaming within a minute.")

    async def stop(self) -> dict[str, Any]:
        """The job as the round ends (still running, we hope), then cancelled."""
        job = await self.state()
        async with self.http.delete(
            f"{self.base}/v1/jobs/{self.job_id}", headers=self.headers
        ) as resp:
            await resp.read()
        return job


def frames(count: int) -> list[bytes]:
    """One pre-encoded Ogg Opus stream, replayed by every client (each is its own stream)."""
    enc = OpusEncoder()
    t = np.arange(FRAME_SAMPLES * count) / 24_000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return [
        proto.encode(proto.Audio(enc.encode(pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])))
        for i in range(count)
    ]


async def read_line(proc: asyncio.subprocess.Process, marker: str) -> str:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"The process ended before printing {marker!r}.")
        if marker in line:
            return line


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def session(
    http: aiohttp.ClientSession,
    url: str,
    payloads: list[bytes],
    rtts: list[float],
    phase_s: float = 0.0,
) -> None:
    async with http.ws_connect(url, compress=0, max_msg_size=0) as ws:
        first = await ws.receive()
        assert first.type is aiohttp.WSMsgType.BINARY, first
        assert first.data[:1] == b"\x00", first
        loop = asyncio.get_running_loop()
        sent: list[float] = []
        got = 0

        async def receive() -> None:
            nonlocal got
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY and msg.data[:1] == b"\x01":
                    rtts.append(loop.time() - sent[got])
                    got += 1
                    if got == len(payloads):
                        return

        receiver = asyncio.create_task(receive())
        start = loop.time() + phase_s
        for i, payload in enumerate(payloads):
            await asyncio.sleep(max(0.0, start + i * 0.08 - loop.time()))
            sent.append(loop.time())
            await ws.send_bytes(payload)
        await asyncio.wait_for(receiver, 30)


async def run_mode(urls: list[str], payloads: list[bytes]) -> list[float]:
    rtts: list[float] = []
    async with aiohttp.ClientSession() as http:
        # Independent speakers do not talk in lock step: spread the sessions over one frame.
        await asyncio.gather(
            *(session(http, u, payloads, rtts, 0.08 * i / len(urls)) for i, u in enumerate(urls))
        )
    return [r * 1000 for r in rtts]


def nginx_conf(folder: Path, port: int, backend_ports: list[int]) -> Path:
    locations = "\n".join(
        f"""        location = /b{i}/api/chat {{
            proxy_pass http://127.0.0.1:{p}/api/chat;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}"""
        for i, p in enumerate(backend_ports)
    )
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder};
    proxy_temp_path {folder};
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""
    )
    return conf


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def job_row(
    urls: list[str], payloads: list[bytes], job: OfflineJob, reps: int
) -> dict[str, Any]:
    """Live sessions through the gateway with and without a long offline job beside them."""
    samples: dict[str, list[float]] = {"without_job": [], "with_job": []}
    progress: list[tuple[float, float]] = []
    running_throughout = 0
    for rep in range(reps):
        order = ["without_job", "with_job"] if rep % 2 == 0 else ["with_job", "without_job"]
        for mode in order:
            if mode == "without_job":
                samples[mode] += await run_mode(urls, payloads)
                continue
            await job.start()
            first = await job.state()
            samples[mode] += await run_mode(urls, payloads)
            last = await job.stop()
            progress.append((float(first.get("progress", 0)), float(last.get("progress", 0))))
            running_throughout += last["state"] == "running"
    row: dict[str, Any] = {
        "sessions": len(urls),
        "rounds": reps,
        "offline_job_audio_s": JOB_AUDIO_S,
        "job_speed_x_real_time": job.speed or "as fast as an echo answers",
        "without_job_ms": summary(samples["without_job"]),
        "with_job_ms": summary(samples["with_job"]),
        # How far the job got during each measured round: it streamed all along if it moved
        # and had not finished when the round ended.
        "job_progress_per_round": [[round(a, 3), round(b, 3)] for a, b in progress],
        "job_running_at_every_round_end": running_throughout == reps,
    }
    for p in ("p50", "p99"):
        row[f"job_added_{p}_ms"] = row["with_job_ms"][p] - row["without_job_ms"][p]
    return row


async def job_backend(speed: float) -> tuple[asyncio.subprocess.Process, str]:
    """The offline job's model server: paced to ``speed`` times real time (0: raw echo)."""
    # A raw echo returns the caller's own Ogg stream, which only the Kyutai flavor (no prompt
    # audio of its own before it) leaves a single stream.
    pace = (
        ["--raw-echo", "--flavor", "kyutai"]
        if speed <= 0
        else ["--frame-delay-ms", f"{80 / speed:g}"]
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.sim",
        *pace,
        "--voices",
        JOB_VOICE,
        "--port",
        "0",
        "--log-level",
        "WARNING",
        stdout=subprocess.PIPE,
    )
    line = await read_line(proc, "is listening on")
    return proc, line.split("is listening on ", 1)[1].strip().removesuffix("/api/chat")


async def main(
    seconds: float,
    counts: list[int],
    reps: int = 3,
    job_sessions: int = 10,
    job_speed: float = 8.0,
) -> dict[str, Any]:
    job_sessions = max(0, min(job_sessions, max(counts)))
    most = max(counts)
    payloads = frames(int(seconds / 0.08))
    tmp = Path(tempfile.mkdtemp(prefix="pplex-bench-"))
    procs: list[asyncio.subprocess.Process] = []
    try:
        sims = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pplex_desktop.sim",
            "--raw-echo",
            "--flavor",
            "kyutai",
            "--instances",
            str(most),
            "--port",
            "0",  # each instance on a free port of its own
            "--log-level",
            "WARNING",
            stdout=subprocess.PIPE,
        )
        procs.append(sims)
        backend_urls = []
        for _ in range(most):
            line = await read_line(sims, "is listening on")
            backend_urls.append(
                line.split("is listening on ", 1)[1].strip().removesuffix("/api/chat")
            )
        backend_ports = [int(u.rsplit(":", 1)[1].split("/")[0]) for u in backend_urls]
        gw_args = [a for u in backend_urls for a in ("--backend", u)]
        if job_sessions:
            job_sim, job_url = await job_backend(job_speed)
            procs.append(job_sim)
            # Voices per model server come only from the settings file, not the command line.
            backends = [BackendConfig(u) for u in backend_urls]
            backends.append(BackendConfig(job_url, (JOB_VOICE,), "offline job"))
            save_settings(tmp / "gw", Settings(backends=tuple(backends)))
            gw_args = []
        gateway = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pplex_desktop.gateway",
            "--data-dir",
            str(tmp / "gw"),
            "--port",
            "0",
            "--log-level",
            "WARNING",
            *gw_args,
            stdout=subprocess.PIPE,
            env={**os.environ, "PPLEX_ADMIN_SECRET": ADMIN},
        )
        procs.append(gateway)
        gw_url = (
            (await read_line(gateway, "is listening on")).split("is listening on ")[1].split()[0]
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                gw_url + "/admin/keys/generate",
                headers={"X-Admin-Secret": ADMIN},
                json={"name": "bench", "rpm": 100_000, "max_sessions": 100},
            ) as resp,
        ):
            key = (await resp.json())["key"]
        nginx_port = free_port()
        nginx: asyncio.subprocess.Process | None = None
        if not shutil.which("nginx"):
            print(NO_NGINX, flush=True)
        else:
            conf = nginx_conf(tmp, nginx_port, backend_ports)
            nginx = await asyncio.create_subprocess_exec(
                "nginx", "-c", str(conf), "-p", str(tmp), stderr=subprocess.PIPE
            )
            procs.append(nginx)
            for _ in range(100):
                try:
                    _r, w = await asyncio.open_connection("127.0.0.1", nginx_port)
                    w.close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        idle_rss = rss_bytes(gateway.pid)
        # The gateway's own background work (health checks of every backend, usage flushes)
        # costs CPU with no traffic at all; measure it and leave it out of the per-message cost.
        idle_cpu0 = cpu_seconds(gateway.pid)
        await asyncio.sleep(seconds)
        idle_cpu_per_s = (cpu_seconds(gateway.pid) - idle_cpu0) / seconds
        results: dict[str, Any] = {
            "seconds_per_run": seconds,
            "load_average_1min": os.getloadavg()[0],
            "runs": [],
        }
        results["gateway_idle_cpu_percent"] = round(idle_cpu_per_s * 100, 2)
        if nginx is None:
            results["nginx"] = NO_NGINX
        ws_gw = gw_url.replace("http", "ws", 1)
        for count in counts:
            query = "?text_prompt=Bench&voice_prompt=NATF2.pt"
            urls = {
                "direct": [
                    u.replace("http", "ws", 1) + "/api/chat" + query for u in backend_urls[:count]
                ],
                "gateway": [f"{ws_gw}/api/chat{query}&api_key={key}" for _ in range(count)],
            }
            if nginx is not None:
                urls["nginx"] = [
                    f"ws://127.0.0.1:{nginx_port}/b{i}/api/chat{query}" for i in range(count)
                ]
            nginx_pids: list[int] = []
            if nginx is not None:
                children = Path(f"/proc/{nginx.pid}/task/{nginx.pid}/children").read_text()
                nginx_pids = [int(p) for p in children.split()]
            pids = {"gateway": [gateway.pid], "nginx": nginx_pids}
            samples: dict[str, list[float]] = {mode: [] for mode in urls}
            cpu: dict[str, float] = dict.fromkeys(urls, 0.0)
            peak_rss = 0

            async def watch_rss() -> None:
                nonlocal peak_rss
                while True:
                    peak_rss = max(peak_rss, rss_bytes(gateway.pid))
                    await asyncio.sleep(0.25)

            watcher = asyncio.create_task(watch_rss())
            # Interleaved rounds, rotating the order, so drift on a shared machine hits every
            # path alike; percentiles come from all rounds pooled.
            modes = list(urls)
            for rep in range(reps):
                for mode in modes[rep % len(modes) :] + modes[: rep % len(modes)]:
                    before = sum(cpu_seconds(p) for p in pids.get(mode, []))
                    began = time.monotonic()
                    samples[mode] += await run_mode(urls[mode], payloads)
                    used = sum(cpu_seconds(p) for p in pids.get(mode, [])) - before
                    if mode == "gateway":
                        used -= idle_cpu_per_s * (time.monotonic() - began)
                    cpu[mode] += used
            watcher.cancel()
            relayed = 2 * count * len(payloads) * reps
            row: dict[str, Any] = {"sessions": count, "rounds": reps}
            for mode in urls:
                row[f"{mode}_ms"] = summary(samples[mode])
            row["gateway_cpu_us_per_message"] = cpu["gateway"] / relayed * 1e6
            row["gateway_memory_kib_per_session"] = max(0, peak_rss - idle_rss) / count / 1024
            if "nginx" in urls:
                row["nginx_cpu_us_per_message"] = cpu["nginx"] / relayed * 1e6
            for p in ("p50", "p99"):
                row[f"gateway_added_{p}_ms"] = row["gateway_ms"][p] - row["direct_ms"][p]
                if "nginx" in urls:
                    row[f"nginx_added_{p}_ms"] = row["nginx_ms"][p] - row["direct_ms"][p]
            results["runs"].append(row)
            print(_describe(row), flush=True)
        if job_sessions:
            minutes = JOB_AUDIO_S / 60
            print(f"Writing a {minutes:.0f}-minute input for the offline job...", flush=True)
            wav = await asyncio.to_thread(long_wav, tmp, JOB_AUDIO_S)
            query = "?text_prompt=Bench&voice_prompt=NATF2.pt"
            live = [f"{ws_gw}/api/chat{query}&api_key={key}" for _ in range(job_sessions)]
            async with aiohttp.ClientSession() as http:
                job = OfflineJob(http, gw_url, key, wav, job_speed)
                results["offline_job"] = await job_row(live, payloads, job, reps)
            print(_describe_job(results["offline_job"]), flush=True)
        return results
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _describe(row: dict[str, Any]) -> str:
    text = (
        f"{row['sessions']:>3} sessions: direct p50 {row['direct_ms']['p50']:.2f} ms "
        f"p99 {row['direct_ms']['p99']:.2f} ms | gateway adds p50 "
        f"{row['gateway_added_p50_ms']:.2f} ms p99 {row['gateway_added_p99_ms']:.2f} ms, "
        f"{row['gateway_cpu_us_per_message']:.0f} us CPU/message, "
        f"{row['gateway_memory_kib_per_session']:.0f} KiB/session"
    )
    if "nginx_ms" in row:
        text += (
            f" | nginx adds p50 {row['nginx_added_p50_ms']:.2f} ms "
            f"p99 {row['nginx_added_p99_ms']:.2f} ms, "
            f"{row['nginx_cpu_us_per_message']:.0f} us CPU/message"
        )
    return text


def _describe_job(row: dict[str, Any]) -> str:
    speed = row["job_speed_x_real_time"]
    pace = f"{speed:g}x real time" if isinstance(speed, (int, float)) else speed
    text = (
        f"{row['sessions']:>3} sessions beside a {row['offline_job_audio_s'] / 60:.0f}-minute "
        f"offline job ({pace}): p99 {row['with_job_ms']['p99']:.2f} ms with it, "
        f"{row['without_job_ms']['p99']:.2f} ms without, so the job adds "
        f"{row['job_added_p99_ms']:+.2f} ms p99 ({row['job_added_p50_ms']:+.2f} ms p50)"
    )
    if not row["job_running_at_every_round_end"]:
        text += "; the job finished before some rounds ended, so they ran partly without it"
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sessions", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--job-sessions",
        type=int,
        default=10,
        help="live sessions measured beside the offline job (0: leave that row out)",
    )
    parser.add_argument(
        "--job-speed",
        type=float,
        default=8.0,
        help="the offline job's model server, in times real time (0: as fast as an echo)",
    )
    args = parser.parse_args()
    started = time.time()
    data = asyncio.run(
        main(
            args.seconds,
            [int(n) for n in args.sessions.split(",")],
            max(1, args.rounds),
            args.job_sessions,
            args.job_speed,
        )
    )
    data["wall_s"] = round(time.time() - started, 1)
    save("proxy", data)
