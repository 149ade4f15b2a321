"""Mouth-to-ear latency of a live conversation on real (virtual) sound devices.

A probe process plays short chirps into the virtual microphone (PulseAudio null sink ``mic``)
and records the virtual speaker (``spk.monitor``) with its own PortAudio streams, so that both
ends are timed by PortAudio's DAC/ADC clocks in one process. Meanwhile this process runs a real
Conversation on the default devices (``mic.monitor`` in, ``spk`` out) against an endpoint that
echoes at once: by default through our gateway (a GatewayRunner with the desktop app's kind of
key, on a thread of its own as in the app) in front of pplex-sim, then straight to the same
pplex-sim as the reference. If the gateway misses 200 ms at the jitter target, smaller targets
are measured too, with their underruns, and a default is recommended. A short calibration first
measures the probe against itself (``mic`` → ``mic.monitor``); that offset is subtracted.

    python -m bench.mouth_to_ear [--seconds 60] [--jitter-ms 160] [--url ws://host:port]

Run from the repository root. Needs pulseaudio, pactl and the ALSA PulseAudio plugin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RATE = 24_000
CHIRP_S = 0.03
WARMUP_S = 2.0  # PortAudio's timing estimates settle during the first second or so
RESULTS = Path(__file__).resolve().parent / "results" / "mouth_to_ear.json"


def chirp() -> np.ndarray:
    t = np.arange(int(CHIRP_S * RATE)) / RATE
    f0, f1 = 1_000.0, 4_000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * CHIRP_S))
    return (0.5 * np.hanning(len(t)) * np.sin(phase)).astype(np.float32)


# The probe: a separate process whose PulseAudio sink and source are chosen by environment.


def probe(seconds: float, interval: float, out: Path) -> None:
    import threading

    import sounddevice as sd

    total = int((WARMUP_S + seconds + 1.0) * RATE)
    signal = np.zeros(total, dtype=np.float32)
    pulse = chirp()
    starts = np.arange(WARMUP_S, WARMUP_S + seconds, interval)
    starts_idx = (starts * RATE).astype(int)
    for i in starts_idx:
        signal[i : i + len(pulse)] = pulse
    recorded = np.zeros(total + RATE, dtype=np.float32)
    out_times: list[tuple[int, float]] = []
    in_times: list[tuple[int, float]] = []
    pos = {"out": 0, "in": 0}
    done = threading.Event()

    def play(outdata: Any, frames: int, t: Any, _status: Any) -> None:
        p = pos["out"]
        n = max(0, min(frames, total - p))
        out_times.append((p, t.outputBufferDacTime))
        outdata[:n, 0] = signal[p : p + n]
        outdata[n:, 0] = 0.0
        pos["out"] = p + frames
        if p + frames >= total:
            done.set()

    def record(indata: Any, frames: int, t: Any, _status: Any) -> None:
        p = pos["in"]
        n = max(0, min(frames, len(recorded) - p))
        in_times.append((p, t.inputBufferAdcTime))
        recorded[p : p + n] = indata[:n, 0]
        pos["in"] = p + frames

    kwargs: dict[str, Any] = {"samplerate": RATE, "channels": 1, "dtype": "float32"}
    with (
        sd.InputStream(callback=record, latency="low", **kwargs),
        sd.OutputStream(callback=play, latency="low", **kwargs),
    ):
        done.wait(WARMUP_S + seconds + 30)
        time.sleep(1.0)  # let the last chirp's echo arrive before the input stream closes
    np.savez(
        out,
        recorded=recorded[: pos["in"]],
        starts_idx=starts_idx,
        out_times=np.array(out_times, dtype=np.float64),
        in_times=np.array(in_times, dtype=np.float64),
    )


def _time_of(index: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map sample indices to the stream clock from (first sample, time) pairs per callback."""
    rows = np.clip(np.searchsorted(table[:, 0], index, side="right") - 1, 0, len(table) - 1)
    return np.asarray(table[rows, 1] + (index - table[rows, 0]) / RATE)


def analyse(path: Path, max_delay: float, interval: float) -> list[float]:
    """Delay in ms from each chirp leaving the probe to its echo arriving back, if found."""
    data = np.load(path)
    recorded, starts_idx = data["recorded"], data["starts_idx"]
    out_times, in_times = data["out_times"], data["in_times"]
    pulse = chirp().astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(recorded) + len(pulse))))
    corr = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(pulse, size)), size)[
        : len(recorded)
    ]
    threshold = 0.25 * float(np.dot(pulse, pulse))  # a quarter of a perfect match
    in_clock = _time_of(np.arange(len(recorded)), in_times)
    delays = []
    for sent in _time_of(starts_idx, out_times):
        window = np.flatnonzero(
            (in_clock >= sent - 0.02) & (in_clock < sent + min(max_delay, interval - 0.05))
        )
        if window.size == 0:
            continue
        best = window[np.argmax(np.abs(corr[window]))]
        if abs(corr[best]) >= threshold:
            delays.append(1000.0 * (in_clock[best] - sent))
    return delays


async def run_probe(
    source: str, seconds: float, interval: float, folder: Path, *, tag: str
) -> Path:
    out = folder / f"probe-{tag}.npz"
    env = {**os.environ, "PULSE_SINK": "mic", "PULSE_SOURCE": source}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.mouth_to_ear",
        "--probe",
        str(out),
        "--seconds",
        str(seconds),
        "--interval",
        str(interval),
        env=env,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"The probe recording {source} failed with code {proc.returncode}.")
    return out


def summarise(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "min_ms": None, "max_ms": None}
    v = np.asarray(values)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(v, 50)), 1),
        "p95_ms": round(float(np.percentile(v, 95)), 1),
        "min_ms": round(float(v.min()), 1),
        "max_ms": round(float(v.max()), 1),
    }


TARGET_MS = 200.0  # mouth to ear, including the 80 ms frame and the jitter buffer
SMALLER_TARGETS_MS = (120.0, 80.0)


class Endpoints:
    """pplex-sim (echo after 0 frames) behind our gateway, both on a thread of their own as in
    the desktop app, so the conversation's loop carries nothing but the conversation."""

    def __init__(self, folder: Path) -> None:
        from pplex_desktop.core.keystore import KeyStore
        from pplex_desktop.core.loop_thread import LoopThread

        self.thread = LoopThread("bench-gateway")
        self.store = KeyStore(folder / "keys.sqlite3")
        self.sim_url = ""
        self.gateway_url = ""
        self.key = ""
        self._sim: Any = None
        self._runner: Any = None

    def start(self) -> None:
        from pplex_desktop.app import OWNER_KEY_NAME, OWNER_MAX_SESSIONS, OWNER_RPM
        from pplex_desktop.core.keystore import KIND_OWNER
        from pplex_desktop.core.settings import BackendConfig, Settings
        from pplex_desktop.gateway.server import GatewayRunner
        from pplex_desktop.sim.sim import SimConfig, SimServer

        self.thread.start()
        self._sim = SimServer(SimConfig(echo_delay_frames=0))
        self.sim_url = self.thread.run(self._sim.start("127.0.0.1", 0), timeout=10)
        settings = Settings(host="127.0.0.1", port=0, backends=(BackendConfig(self.sim_url),))
        self._runner = GatewayRunner(settings, self.store)
        self.gateway_url = self.thread.run(self._runner.start(), timeout=10).url
        # The desktop app's own kind of key, with its limits.
        self.key = self.store.create(
            OWNER_KEY_NAME, kind=KIND_OWNER, rpm=OWNER_RPM, max_sessions=OWNER_MAX_SESSIONS
        ).key

    def stop(self) -> None:
        if self.thread.running:
            if self._runner is not None:
                self.thread.run(self._runner.stop(), timeout=15)
            if self._sim is not None:
                self.thread.run(self._sim.stop(), timeout=15)
            self.thread.stop()
        self.store.close()


async def one_conversation(
    args: argparse.Namespace,
    folder: Path,
    *,
    url: str,
    api_key: str | None,
    jitter_ms: float,
    seconds: float,
    tag: str,
) -> tuple[list[float], tuple[Any, int]]:
    """One live conversation on the default devices, measured by the probe for ``seconds``;
    returns the raw delays (ms), the conversation's final statistics and the buffer's trims."""
    from pplex_desktop.audio.conversation import (
        Conversation,
        ConversationConfig,
        ConversationEvent,
        ConversationState,
        StateChanged,
    )
    from pplex_desktop.audio.portaudio import SoundDeviceDuplex
    from pplex_desktop.core.redact import redact_url

    live = asyncio.Event()
    ended = asyncio.Event()

    def listen(event: ConversationEvent) -> None:
        if isinstance(event, StateChanged):
            if event.state is ConversationState.LIVE:
                live.set()
            elif event.state.finished:
                if event.detail != "You hung up.":
                    print(f"The conversation {event.state}: {event.detail}")
                ended.set()
                live.set()

    config = ConversationConfig(
        url=url,
        text_prompt=args.prompt,
        voice_prompt=args.voice,
        api_key=api_key,
        handshake_timeout=120.0,
    )
    device = SoundDeviceDuplex(jitter_target_ms=jitter_ms)
    conversation = Conversation(config, device, listen)
    task = asyncio.create_task(conversation.run())
    await live.wait()
    if ended.is_set():
        await task
        raise RuntimeError(f"The conversation with {redact_url(url)} did not go live.")
    result = await run_probe("spk.monitor", seconds, args.interval, folder, tag=tag)
    stats = conversation.stats()
    await conversation.hang_up()
    await task
    return analyse(result, args.max_delay, args.interval), (stats, device.jitter.stats().trims)


async def measure_case(
    args: argparse.Namespace,
    folder: Path,
    *,
    name: str,
    url: str,
    api_key: str | None,
    jitter_ms: float,
    offset: float,
) -> dict[str, Any]:
    """``--conversations`` fresh conversations sharing ``--seconds``: each one settles at its own
    delay (stream start-up phases), so one long call would measure a single draw of that."""
    from pplex_desktop.core.redact import redact_url

    count = max(1, args.conversations)
    print(
        f"{name}, jitter target {jitter_ms:g} ms: {count} conversations, "
        f"{args.seconds:g} s in all..."
    )
    delays: list[float] = []
    per_call: list[float | None] = []
    underruns = dropped = overflows = sent = received = trims = 0
    underruns_per_call: list[int] = []
    rtts: list[float] = []
    for i in range(count):
        raw, (stats, trimmed) = await one_conversation(
            args,
            folder,
            url=url,
            api_key=api_key,
            jitter_ms=jitter_ms,
            seconds=args.seconds / count,
            tag=f"{name}-{jitter_ms:g}-{i}",
        )
        found = [d - offset for d in raw]
        delays += found
        per_call.append(summarise(found)["p50_ms"])
        underruns += stats.underruns
        underruns_per_call.append(stats.underruns)
        trims += trimmed
        dropped += stats.dropped_ms
        overflows += stats.input_overflows
        sent += stats.frames_sent
        received += stats.frames_received
        if stats.rtt_ms is not None:
            rtts.append(stats.rtt_ms)
    return {
        "endpoint": name,
        "url": redact_url(url),
        "jitter_target_ms": jitter_ms,
        "mouth_to_ear": summarise(delays),
        "p50_per_conversation_ms": per_call,
        "conversation": {
            "conversations": count,
            "rtt_ms": round(float(np.mean(rtts)), 1) if rtts else None,
            "underruns": underruns,
            "underruns_per_conversation": underruns_per_call,
            # Standing surplus dropped by the jitter buffer (audio/jitter.py, settle window).
            "settle_trims": trims,
            "dropped_ms": round(dropped, 1),
            "frames_sent": sent,
            "frames_received": received,
            "input_overflows": overflows,
        },
    }


def recommend(cases: list[dict[str, Any]]) -> tuple[float | None, str]:
    """The largest jitter target through the gateway that meets the target without underruns."""
    through = [c for c in cases if c["endpoint"] == "gateway" and c["mouth_to_ear"]["n"]]
    fitting = [
        c
        for c in through
        if c["mouth_to_ear"]["p95_ms"] < TARGET_MS and c["conversation"]["underruns"] == 0
    ]
    if fitting:
        best = max(fitting, key=lambda c: c["jitter_target_ms"])
        return best["jitter_target_ms"], (
            f"{best['jitter_target_ms']:g} ms: the largest target (most cushion against network "
            f"and model jitter) whose p95 stays under {TARGET_MS:g} ms through the gateway "
            "without underruns."
        )
    clean = [c for c in through if c["conversation"]["underruns"] == 0]
    if clean:
        best = min(clean, key=lambda c: c["mouth_to_ear"]["p95_ms"])
        return best["jitter_target_ms"], (
            f"{best['jitter_target_ms']:g} ms: no target met {TARGET_MS:g} ms without underruns; "
            "this is the fastest one that played without a gap."
        )
    return None, "Every target ran dry at least once; no default can be recommended from this run."


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from pplex_desktop.audio.portaudio import refresh_devices
    from pplex_desktop.core.redact import redact_url
    from tests.audio import pulse

    setup = pulse.start()
    endpoints: Endpoints | None = None
    cases: list[dict[str, Any]] = []
    try:
        refresh_devices()
        with tempfile.TemporaryDirectory(prefix="pplex-m2e-") as tmp:
            folder = Path(tmp)
            print("Calibrating the probe against itself (mic -> mic.monitor)...")
            calibration = analyse(
                await run_probe("mic.monitor", 4.0, args.interval, folder, tag="calibration"),
                0.5,
                args.interval,
            )
            if not calibration:
                raise RuntimeError("The probe did not hear itself; the virtual devices are broken.")
            offset = float(np.median(calibration))

            async def case(name: str, url: str, key: str | None, jitter_ms: float) -> None:
                cases.append(
                    await measure_case(
                        args,
                        folder,
                        name=name,
                        url=url,
                        api_key=key,
                        jitter_ms=jitter_ms,
                        offset=offset,
                    )
                )

            if args.url is not None:
                await case("given", args.url, args.api_key, args.jitter_ms)
            else:
                endpoints = Endpoints(folder)
                endpoints.start()
                gw, key = endpoints.gateway_url, endpoints.key
                await case("gateway", gw, key, args.jitter_ms)
                # The reference: the same conversation straight to the simulator.
                await case("direct", endpoints.sim_url, None, args.jitter_ms)
                if not args.no_smaller and cases[0]["mouth_to_ear"]["p95_ms"] >= TARGET_MS:
                    for smaller in SMALLER_TARGETS_MS:
                        if smaller < args.jitter_ms:
                            await case("gateway", gw, key, smaller)
    finally:
        if endpoints is not None:
            endpoints.stop()
        pulse.stop(setup)
    result: dict[str, Any] = {
        "what": "mouth-to-ear latency: chirp into the virtual microphone to its echo out of "
        "the virtual speaker, through a live Conversation on real PortAudio streams",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endpoint": redact_url(args.url)
        if args.url
        else "our gateway (GatewayRunner, owner key) in front of pplex-sim, echo delay 0 "
        "frames; direct = the same pplex-sim without the gateway",
        "target_ms": TARGET_MS,
        "seconds": args.seconds,
        "chirps_sent": int(args.seconds / args.interval),
        "reference_probe_loopback": summarise(calibration),
        "cases": cases,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    gateway = next((c for c in cases if c["endpoint"] == "gateway"), None)
    direct = next((c for c in cases if c["endpoint"] == "direct"), None)
    if gateway and direct and gateway["mouth_to_ear"]["n"] and direct["mouth_to_ear"]["n"]:
        result["gateway_over_direct_p50"] = round(
            gateway["mouth_to_ear"]["p50_ms"] / direct["mouth_to_ear"]["p50_ms"], 3
        )
        result["gateway_minus_direct_p50_ms"] = round(
            gateway["mouth_to_ear"]["p50_ms"] - direct["mouth_to_ear"]["p50_ms"], 1
        )
    if args.url is None:
        target, why = recommend(cases)
        result["recommended_jitter_target_ms"] = target
        result["recommendation"] = why
    return result


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{'endpoint':10} {'target':>7} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
        f"{'underruns':>9} {'trims':>5} {'rtt ms':>7}"
    )
    for c in result["cases"]:
        s, conv = c["mouth_to_ear"], c["conversation"]
        cells = [
            f"{s[k]:>8}" if s[k] is not None else f"{'-':>8}"
            for k in ("p50_ms", "p95_ms", "max_ms")
        ]
        calls = ", ".join("-" if p is None else f"{p:g}" for p in c["p50_per_conversation_ms"])
        print(
            f"{c['endpoint']:10} {c['jitter_target_ms']:>7g} {s['n']:>4} {' '.join(cells)} "
            f"{conv['underruns']:>9} {conv['settle_trims']:>5} {conv['rtt_ms']!s:>7}   "
            f"per call p50: {calls}"
        )
    loop = result["reference_probe_loopback"]
    print(f"probe loopback (subtracted): p50 {loop['p50_ms']} ms over {loop['n']} chirps")
    if "gateway_over_direct_p50" in result:
        print(
            f"through the gateway / direct (p50): x{result['gateway_over_direct_p50']} "
            f"(+{result['gateway_minus_direct_p50_ms']} ms)"
        )
    if "recommendation" in result:
        print(f"recommended jitter target: {result['recommendation']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="measure only this Moshi endpoint (default: our gateway)")
    parser.add_argument("--api-key", default=None, help="key for our gateway, if --url is one")
    parser.add_argument("--voice", default="NATF2.pt")
    parser.add_argument("--prompt", default="You repeat what you hear.")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per case")
    parser.add_argument("--conversations", type=int, default=3, help="fresh conversations per case")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between chirps")
    parser.add_argument("--max-delay", type=float, default=0.9, help="seconds to look for an echo")
    parser.add_argument("--jitter-ms", type=float, default=160.0)
    parser.add_argument(
        "--no-smaller", action="store_true", help="never try smaller jitter targets"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        probe(args.seconds, args.interval, args.probe)
        return 0
    result = asyncio.run(measure(args))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nWrote {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
