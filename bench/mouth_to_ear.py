"""Mouth-to-ear latency of a live conversation on real (virtual) sound devices.

A probe process plays short chirps into the virtual microphone (PulseAudio null sink ``mic``)
and records the virtual speaker (``spk.monitor``) with its own PortAudio streams, so that both
ends are timed by PortAudio's DAC/ADC clocks in one process. Meanwhile this process runs a real
Conversation on the default devices (``mic.monitor`` in, ``spk`` out) against a Moshi endpoint
that echoes: pplex-sim with zero echo delay unless ``--url`` points elsewhere (our gateway).
A short calibration first measures the probe against itself (``mic`` → ``mic.monitor``); that
offset is the reference subtracted from every measurement.

    python -m bench.mouth_to_ear [--url ws://127.0.0.1:8998] [--seconds 60]

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
    return table[rows, 1] + (index - table[rows, 0]) / RATE


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


async def run_probe(source: str, seconds: float, interval: float, folder: Path) -> Path:
    out = folder / f"probe-{source}.npz"
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


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from pplex_desktop.audio.conversation import (
        Conversation,
        ConversationConfig,
        ConversationEvent,
        ConversationState,
        StateChanged,
    )
    from pplex_desktop.audio.devices import SoundDeviceDuplex, refresh_devices
    from pplex_desktop.backend.sim import SimConfig, SimServer
    from pplex_desktop.core.redact import redact_url
    from tests.audio import pulse

    setup = pulse.start()
    sim: SimServer | None = None
    try:
        refresh_devices()
        with tempfile.TemporaryDirectory(prefix="pplex-m2e-") as tmp:
            folder = Path(tmp)
            print("Calibrating the probe against itself (mic -> mic.monitor)...")
            calibration = analyse(
                await run_probe("mic.monitor", 4.0, args.interval, folder), 0.5, args.interval
            )
            if not calibration:
                raise RuntimeError("The probe did not hear itself; the virtual devices are broken.")
            offset = float(np.median(calibration))
            url = args.url
            if url is None:
                sim = SimServer(SimConfig(echo_delay_frames=0))
                url = await sim.start()
            live = asyncio.Event()
            ended = asyncio.Event()

            def listen(event: ConversationEvent) -> None:
                if isinstance(event, StateChanged):
                    if event.state is ConversationState.LIVE:
                        live.set()
                    elif event.state.finished:
                        print(f"The conversation {event.state}: {event.detail}")
                        ended.set()
                        live.set()

            config = ConversationConfig(
                url=url,
                text_prompt=args.prompt,
                voice_prompt=args.voice,
                api_key=args.api_key,
                handshake_timeout=120.0,
            )
            device = SoundDeviceDuplex(jitter_target_ms=args.jitter_ms)
            conversation = Conversation(config, device, listen)
            task = asyncio.create_task(conversation.run())
            await live.wait()
            if ended.is_set():
                raise RuntimeError("The conversation did not go live.")
            print(f"Live on {redact_url(url)}; measuring for {args.seconds:g} s...")
            result = await run_probe("spk.monitor", args.seconds, args.interval, folder)
            stats = conversation.stats()
            await conversation.hang_up()
            await task
            raw = analyse(result, args.max_delay, args.interval)
    finally:
        if sim is not None:
            await sim.stop()
        pulse.stop(setup)
    corrected = [d - offset for d in raw]
    return {
        "what": "mouth-to-ear latency: chirp into the virtual microphone to its echo out of "
        "the virtual speaker, through a live Conversation on real PortAudio streams",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endpoint": redact_url(url) if args.url else "pplex-sim, echo delay 0 frames (in-process)",
        "seconds": args.seconds,
        "chirps_sent": int(args.seconds / args.interval),
        "jitter_target_ms": args.jitter_ms,
        "mouth_to_ear": summarise(corrected),
        "reference_probe_loopback": summarise(calibration),
        "conversation": {
            "rtt_ms": stats.rtt_ms,
            "underruns": stats.underruns,
            "dropped_ms": stats.dropped_ms,
            "frames_sent": stats.frames_sent,
            "frames_received": stats.frames_received,
            "input_overflows": stats.input_overflows,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ("mouth-to-ear", result["mouth_to_ear"]),
        ("probe loopback", result["reference_probe_loopback"]),
    ]
    print(f"\n{'':16} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'min ms':>8} {'max ms':>8}")
    for name, s in rows:
        cells = [
            f"{s[k]:>8}" if s[k] is not None else f"{'-':>8}"
            for k in ("p50_ms", "p95_ms", "min_ms", "max_ms")
        ]
        print(f"{name:16} {s['n']:>4} {' '.join(cells)}")
    conv = result["conversation"]
    print(
        f"\nendpoint: {result['endpoint']}; jitter target {result['jitter_target_ms']:g} ms; "
        f"network+model round trip {conv['rtt_ms']} ms; underruns {conv['underruns']}; "
        f"dropped {conv['dropped_ms']} ms; chirps found {result['mouth_to_ear']['n']}"
        f"/{result['chirps_sent']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="Moshi endpoint (default: an in-process pplex-sim)")
    parser.add_argument("--api-key", default=None, help="key for our gateway, if --url is one")
    parser.add_argument("--voice", default="NATF2.pt")
    parser.add_argument("--prompt", default="You repeat what you hear.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between chirps")
    parser.add_argument("--max-delay", type=float, default=0.9, help="seconds to look for an echo")
    parser.add_argument("--jitter-ms", type=float, default=160.0)
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
