"""Mouth-to-ear latency of a live conversation on real (virtual) sound devices.

A probe process plays short chirps into the virtual microphone (PulseAudio null sink ``mic``)
and records the virtual speaker (``spk.monitor``) with its own PortAudio streams, so that both
ends are timed by PortAudio's DAC/ADC clocks in one process. Meanwhile this process runs a real
Conversation on the default devices (``mic.monitor`` in, ``spk`` out) against an endpoint that
echoes at once: pplex-sim directly, then our gateway (a GatewayRunner with the desktop app's
kind of key, on a thread of its own as in the app) in front of the same pplex-sim; each on a
clean link and on pplex-sim's jittery link (every frame 0..N ms late, seeded). Every case runs
at the default (adaptive) playback buffer, and the old fixed 160 ms is measured for reference.
A short calibration first measures the probe against itself (``mic`` → ``mic.monitor``); that
offset is subtracted. Underruns are the playback buffer running dry, per minute of talk; the
sound system's own underflows (a loaded machine starving the audio thread) are counted apart.

    python -m bench.mouth_to_ear [--seconds 60] [--link-jitter 0,20,60] [--fixed-ms 160]
                                 [--url ws://host:port]

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
        return {"n": 0, "p50_ms": None, "p90_ms": None, "min_ms": None, "max_ms": None}
    v = np.asarray(values)
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(v, 50)), 1),
        "p90_ms": round(float(np.percentile(v, 90)), 1),
        "min_ms": round(float(v.min()), 1),
        "max_ms": round(float(v.max()), 1),
    }


# Goals of issue #16 (mouth to ear includes the 80 ms frame, the buffer and both devices).
GOAL_LOOPBACK_P50_MS = 150.0
GOAL_LOOPBACK_UNDERRUNS_PER_MIN = 1.0
GOAL_JITTER_UNDERRUNS_PER_MIN = 2.0
JITTER_SEED = 1


class Endpoints:
    """pplex-sim (echo after 0 frames, with the jittery link asked for) behind our gateway, both
    on a thread of their own as in the desktop app, so the conversation's loop carries nothing
    but the conversation."""

    def __init__(self, folder: Path, jitter_ms: float) -> None:
        from pplex_desktop.core.keystore import KeyStore
        from pplex_desktop.core.loop_thread import LoopThread

        self.jitter_ms = jitter_ms
        self.thread = LoopThread("bench-gateway")
        self.store = KeyStore(folder / f"keys-{jitter_ms:g}.sqlite3")
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
        from pplex_desktop.sim.jitter import JitterFault
        from pplex_desktop.sim.sim import SimConfig, SimServer

        self.thread.start()
        fault = JitterFault(spread_s=self.jitter_ms / 1000.0, seed=JITTER_SEED)
        self._sim = SimServer(SimConfig(echo_delay_frames=0, jitter=fault))
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
    target_ms: float | None,
    seconds: float,
    tag: str,
) -> tuple[list[float], Any, Any]:
    """One live conversation on the default devices, measured by the probe for ``seconds``;
    returns the raw delays (ms), the conversation's and the jitter buffer's final statistics."""
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
    device = SoundDeviceDuplex(jitter_target_ms=target_ms)
    conversation = Conversation(config, device, listen)
    task = asyncio.create_task(conversation.run())
    await live.wait()
    if ended.is_set():
        await task
        raise RuntimeError(f"The conversation with {redact_url(url)} did not go live.")
    result = await run_probe("spk.monitor", seconds, args.interval, folder, tag=tag)
    stats = conversation.stats()
    jitter = device.jitter.stats()
    await conversation.hang_up()
    await task
    return analyse(result, args.max_delay, args.interval), stats, jitter


async def measure_case(
    args: argparse.Namespace,
    folder: Path,
    *,
    name: str,
    url: str,
    api_key: str | None,
    link_jitter_ms: float,
    target_ms: float | None,
    offset: float,
) -> dict[str, Any]:
    """``--conversations`` fresh conversations sharing ``--seconds``: each one settles at its own
    delay (stream start-up phases), so one long call would measure a single draw of that."""
    from pplex_desktop.core.redact import redact_url

    count = max(1, args.conversations)
    buffer = "adaptive" if target_ms is None else f"fixed {target_ms:g} ms"
    print(
        f"{name}, link jitter {link_jitter_ms:g} ms, buffer {buffer}: {count} conversations, "
        f"{args.seconds:g} s in all...",
        flush=True,
    )
    delays: list[float] = []
    per_call: list[float | None] = []
    underruns = os_underflows = overflows = sent = received = 0
    dropped = stretched = trimmed = 0.0
    targets: list[float] = []
    jitters: list[float] = []
    underruns_per_call: list[int] = []
    rtts: list[float] = []
    for i in range(count):
        raw, stats, jitter = await one_conversation(
            args,
            folder,
            url=url,
            api_key=api_key,
            target_ms=target_ms,
            seconds=args.seconds / count,
            tag=f"{name}-{link_jitter_ms:g}-{buffer}-{i}".replace(" ", ""),
        )
        found = [d - offset for d in raw]
        delays += found
        per_call.append(summarise(found)["p50_ms"])
        underruns += stats.underruns
        underruns_per_call.append(stats.underruns)
        os_underflows += stats.output_underflows
        dropped += stats.dropped_ms
        stretched += jitter.stretched_ms
        trimmed += jitter.trimmed_ms
        targets.append(round(jitter.target_ms, 1))
        jitters.append(round(jitter.jitter_ms, 1))
        overflows += stats.input_overflows
        sent += stats.frames_sent
        received += stats.frames_received
        if stats.rtt_ms is not None:
            rtts.append(stats.rtt_ms)
    minutes = args.seconds / 60.0
    return {
        "endpoint": name,
        "url": redact_url(url),
        "link_jitter_ms": link_jitter_ms,
        "buffer": buffer,
        "mouth_to_ear": summarise(delays),
        "underruns_per_min": round(underruns / minutes, 2),
        "os_underflows_per_min": round(os_underflows / minutes, 2),
        "p50_per_conversation_ms": per_call,
        "conversation": {
            "conversations": count,
            "rtt_ms": round(float(np.mean(rtts)), 1) if rtts else None,
            "underruns": underruns,
            "underruns_per_conversation": underruns_per_call,
            # Times the sound system itself said the speaker ran dry (a loaded machine).
            "os_underflows": os_underflows,
            "final_target_ms": targets,
            "measured_jitter_ms": jitters,
            "stretched_ms": round(stretched, 1),
            "trimmed_ms": round(trimmed, 1),
            "dropped_ms": round(dropped, 1),
            "frames_sent": sent,
            "frames_received": received,
            "input_overflows": overflows,
        },
    }


def goals(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal of issue #16 against the adaptive rows, met or not."""
    checks: list[dict[str, Any]] = []
    for c in cases:
        if c["buffer"] != "adaptive" or not c["mouth_to_ear"]["n"]:
            continue
        where = f"{c['endpoint']}, link jitter {c['link_jitter_ms']:g} ms"
        if c["link_jitter_ms"] == 0:
            p50 = c["mouth_to_ear"]["p50_ms"]
            checks.append(
                {
                    "goal": f"{where}: p50 <= {GOAL_LOOPBACK_P50_MS:g} ms",
                    "value": p50,
                    "met": p50 <= GOAL_LOOPBACK_P50_MS,
                }
            )
            limit = GOAL_LOOPBACK_UNDERRUNS_PER_MIN
        else:
            limit = GOAL_JITTER_UNDERRUNS_PER_MIN
        rate = c["underruns_per_min"]
        checks.append(
            {
                "goal": f"{where}: <= {limit:g} underruns a minute",
                "value": rate,
                "met": rate <= limit,
            }
        )
    return checks


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from pplex_desktop.audio.portaudio import refresh_devices
    from pplex_desktop.core.redact import redact_url
    from tests.audio import pulse

    setup = pulse.start()
    cases: list[dict[str, Any]] = []
    started = time.monotonic()
    load_before = os.getloadavg()
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

            async def case(
                name: str, url: str, key: str | None, link: float, target: float | None
            ) -> None:
                cases.append(
                    await measure_case(
                        args,
                        folder,
                        name=name,
                        url=url,
                        api_key=key,
                        link_jitter_ms=link,
                        target_ms=target,
                        offset=offset,
                    )
                )

            if args.url is not None:
                await case("given", args.url, args.api_key, 0.0, None)
                await case("given", args.url, args.api_key, 0.0, args.fixed_ms)
            else:
                for link in args.link_jitter:
                    endpoints = Endpoints(folder, link)
                    endpoints.start()
                    try:
                        await case("direct", endpoints.sim_url, None, link, None)
                        gw, key = endpoints.gateway_url, endpoints.key
                        await case("gateway", gw, key, link, None)
                        if link in (0.0, max(args.link_jitter)):
                            # The old default, for reference.
                            await case("gateway", gw, key, link, args.fixed_ms)
                    finally:
                        endpoints.stop()
    finally:
        pulse.stop(setup)
    result: dict[str, Any] = {
        "what": "mouth-to-ear latency: chirp into the virtual microphone to its echo out of "
        "the virtual speaker, through a live Conversation on real PortAudio streams",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endpoint": redact_url(args.url)
        if args.url
        else "direct = pplex-sim (echo delay 0 frames); gateway = our gateway (GatewayRunner, "
        "owner key) in front of the same pplex-sim; link jitter = pplex-sim's jittery link "
        f"(each frame 0..N ms late, seed {JITTER_SEED})",
        "seconds_per_case": args.seconds,
        "chirps_per_case": int(args.seconds / args.interval),
        "run_minutes": round((time.monotonic() - started) / 60.0, 1),
        # The bench shares the machine: its arrival jitter and sound-system underflows are as
        # much the machine's as the link's.
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "reference_probe_loopback": summarise(calibration),
        "cases": cases,
        "goals": goals(cases),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    return result


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{'endpoint':8} {'link':>5} {'buffer':>13} {'n':>3} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'ur/min':>6} {'os/min':>6} {'target':>13} {'trim ms':>7} {'str ms':>6}"
    )
    for c in result["cases"]:
        s, conv = c["mouth_to_ear"], c["conversation"]
        cells = [f"{s[k]:>7}" if s[k] is not None else f"{'-':>7}" for k in ("p50_ms", "p90_ms")]
        targets = "/".join(f"{t:.0f}" for t in conv["final_target_ms"])
        print(
            f"{c['endpoint']:8} {c['link_jitter_ms']:>5g} {c['buffer']:>13} {s['n']:>3} "
            f"{' '.join(cells)} {c['underruns_per_min']:>6g} {c['os_underflows_per_min']:>6g} "
            f"{targets:>13} {conv['trimmed_ms']:>7g} {conv['stretched_ms']:>6g}"
        )
    loop = result["reference_probe_loopback"]
    print(f"probe loopback (subtracted): p50 {loop['p50_ms']} ms over {loop['n']} chirps")
    for g in result["goals"]:
        print(f"{'met ' if g['met'] else 'MISSED'} {g['goal']}: {g['value']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="measure only this Moshi endpoint (default: our gateway)")
    parser.add_argument("--api-key", default=None, help="key for our gateway, if --url is one")
    parser.add_argument("--voice", default="NATF2.pt")
    parser.add_argument("--prompt", default="You repeat what you hear.")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per case")
    parser.add_argument("--conversations", type=int, default=2, help="fresh conversations per case")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between chirps")
    parser.add_argument("--max-delay", type=float, default=0.9, help="seconds to look for an echo")
    parser.add_argument(
        "--fixed-ms", type=float, default=160.0, help="the fixed buffer of the reference rows"
    )
    parser.add_argument(
        "--link-jitter",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[0.0, 20.0, 60.0],
        help="pplex-sim link jitter spreads to measure, in ms (default 0,20,60)",
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
