"""Echo cancellation on the Talk page, measured through the real pipeline in a virtual room.

The room (tests/audio/echo_room.py): PulseAudio's loopback carries the speaker to the
microphone 40 ms or 120 ms later at full level. A live Conversation on the default devices
talks through our gateway to pplex-sim, which echoes what it heard four seconds later. The user
says a 4 s burst A of speech-like sound, then, while the model plays A back, a 1.5 s burst B
(double talk). Measured from the call's recording (left: what the model heard, right: what the
speaker played):

- ERLE: the speaker's level against what the model heard of it, during far-end-only speech
  after convergence (the last second of A's playback, and B's playback);
- time to converge: from the first far-end sound until ERLE stays at 30 dB or more;
- near-end loss in double talk: how much quieter B reached the model than A (said alone), net
  of the two bursts' own levels;
- the feedback loop: the demo backend answers what it hears, so whatever of its voice gets
  through comes back once more: the second generation against the first. Without cancellation
  (Headphones mode, in the same room) it rings.

    python -m bench.echo            # writes bench/results/echo.json

Run from the repository root. Needs pulseaudio, pactl, paplay and the ALSA PulseAudio plugin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "echo.json"
ECHO_FRAMES = 50  # the model answers four seconds after it heard
ECHO_S = ECHO_FRAMES * 0.08
LEAD_S, A_S, GAP_S, B_S = 0.5, 4.0, 2.5, 1.5
WINDOW_S = 0.25
GOAL_ERLE_DB, GOAL_CONVERGE_S, GOAL_LOSS_DB, GOAL_RING_DB = 30.0, 2.0, 6.0, 30.0


def script(rate: int) -> tuple[np.ndarray, float]:
    from tests.audio.echo_room import babble

    a, b = babble(A_S, seed=11), babble(B_S, seed=12)
    parts: list[np.ndarray] = [np.zeros(round(LEAD_S * rate)), a, np.zeros(round(GAP_S * rate)), b]
    gap_db = 10 * np.log10(np.mean(a.astype(np.float64) ** 2) / np.mean(b.astype(np.float64) ** 2))
    return np.concatenate(parts).astype(np.float32), float(gap_db)


def analyse(data: np.ndarray, latency_s: float, a_over_b_db: float) -> dict[str, Any]:
    from tests.audio.echo_room import level_db, onset

    heard, out = data[:, 0], data[:, 1]
    said = onset(heard)
    played = onset(out)
    delta = played - said - ECHO_S  # the pipeline's own delay, on top of the model's
    lat = latency_s

    def erle(start: float, end: float) -> float:
        return level_db(out, start, end) - level_db(heard, start + lat, end + lat)

    steps = np.arange(played, played + A_S + GAP_S - WINDOW_S, WINDOW_S)
    # Only windows where the far end alone reaches the microphone: before B is said.
    # (with a margin: the burst's measured onset may come a little after it really began)
    far_only_end = said + A_S + GAP_S - lat - 0.3
    curve = [(round(t - played, 2), round(erle(t, t + WINDOW_S), 1)) for t in steps]
    far_only = [(t, e) for t, e in curve if played + t + WINDOW_S <= far_only_end + 1e-9]
    converged_at = None
    for i, (t, _e) in enumerate(far_only):
        if all(e >= GOAL_ERLE_DB for _t, e in far_only[i:]):
            converged_at = t
            break
    late = erle(far_only_end - 1.0, far_only_end)
    b_played = played + A_S + GAP_S
    b_erle = erle(b_played + 0.1, b_played + B_S)
    a_level = level_db(heard, said + 0.2, said + A_S)
    b_level = level_db(heard, said + A_S + GAP_S + 0.1, said + A_S + GAP_S + B_S)
    first = level_db(out, played + 0.1, played + A_S - 0.1)
    gen2 = played + ECHO_S + delta + lat
    # The second generation of A alone: what the model heard of A's playback before B.
    second = level_db(out, gen2 + 0.1, gen2 + (far_only_end - played) - 0.05)
    return {
        "pipeline_delay_ms": round(1000 * delta, 1),
        "erle_far_only_last_second_db": round(late, 1),
        "erle_far_only_b_db": round(b_erle, 1),
        "converged_after_s": converged_at,
        "erle_curve_db": far_only,
        "near_end_loss_double_talk_db": round(a_level - b_level - a_over_b_db, 1),
        "second_generation_below_first_db": round(first - second, 1),
    }


async def one(latency_ms: int, cancel: bool, folder: Path) -> dict[str, Any]:
    from pplex_desktop.audio.echo import EchoSettings
    from tests.audio.echo_room import RATE, Gateway, call, room

    pcm, a_over_b = script(RATE)
    with room(latency_ms), Gateway(folder, ECHO_FRAMES) as gateway:
        done = await call(
            gateway, EchoSettings(cancel=cancel), pcm, tail_s=ECHO_S + B_S + 3.0, folder=folder
        )
    result = analyse(done.data, latency_ms / 1000, a_over_b)
    result["echo_warned"] = any(e.heard for e in done.echo_heard)
    return result


async def measure() -> dict[str, Any]:
    from pplex_desktop.audio.portaudio import refresh_devices
    from tests.audio import pulse

    setup = pulse.start()
    cases: dict[str, Any] = {}
    try:
        refresh_devices()
        with tempfile.TemporaryDirectory(prefix="pplex-echo-") as tmp:
            for latency in (40, 120):
                for cancel in (True, False):
                    name = f"{latency}ms_{'cancellation' if cancel else 'headphones_mode'}"
                    print(f"Measuring {name}...", flush=True)
                    cases[name] = await one(latency, cancel, Path(tmp) / name)
    finally:
        pulse.stop(setup)
    on = [v for k, v in cases.items() if k.endswith("cancellation")]
    goals = {
        "erle_db": GOAL_ERLE_DB,
        "converge_s": GOAL_CONVERGE_S,
        "near_end_loss_db": GOAL_LOSS_DB,
        "second_generation_db": GOAL_RING_DB,
    }
    met = {
        "erle": all(c["erle_far_only_last_second_db"] >= GOAL_ERLE_DB for c in on),
        "converge": all(
            c["converged_after_s"] is not None and c["converged_after_s"] <= GOAL_CONVERGE_S
            for c in on
        ),
        "near_end": all(c["near_end_loss_double_talk_db"] <= GOAL_LOSS_DB for c in on),
        "feedback": all(c["second_generation_below_first_db"] >= GOAL_RING_DB for c in on),
    }
    return {
        "what": "WebRTC AEC3 (livekit AudioProcessingModule) on the Talk page's microphone, "
        "a live Conversation through our gateway to pplex-sim echoing after 4 s, in a "
        "PulseAudio loopback room (speaker to microphone at full level)",
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "goals": goals,
        "goals_met": met,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(measure())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, case in result["cases"].items():
        print(
            f"{name:28s} ERLE {case['erle_far_only_last_second_db']:5.1f} dB "
            f"(B {case['erle_far_only_b_db']:5.1f}), converged {case['converged_after_s']} s, "
            f"double-talk loss {case['near_end_loss_double_talk_db']:5.1f} dB, "
            f"2nd generation {-case['second_generation_below_first_db']:+.1f} dB, "
            f"warned {case['echo_warned']}"
        )
    print("Goals met:", result["goals_met"])
    print(f"Saved {args.out}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
