"""pplex-sim's jittery link: the schedule on its own, then a real pplex-sim on loopback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pplex_desktop.moshi.client import AudioEvent, MoshiSession, SessionOptions
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE
from pplex_desktop.sim.cli import main
from pplex_desktop.sim.jitter import JitterFault, JitterSchedule
from tests.signals import tone
from tests.sim.process import sim_process

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
OPTIONS = SessionOptions(text_prompt="Hello.", voice_prompt="NATF2.pt", handshake_timeout=10)


def releases(fault: JitterFault, frames: int) -> list[float]:
    schedule = JitterSchedule(fault, start=0.0)
    return [schedule.release((i + 1) * FRAME_S) for i in range(frames)]


def test_each_frame_waits_up_to_the_spread_in_order_and_by_seed() -> None:
    fault = JitterFault(spread_s=0.06, seed=1)
    out = releases(fault, 500)
    delays = np.array(out) - (np.arange(500) + 1) * FRAME_S
    assert delays.min() >= 0.0 and delays.max() <= 0.06 + FRAME_S
    assert np.percentile(delays, 90) - np.percentile(delays, 10) > 0.04, "spread, not a shift"
    wide = releases(JitterFault(spread_s=0.3, seed=1), 500)  # more than a frame apart
    assert wide == sorted(wide), "frames never overtake each other"
    assert out == releases(fault, 500), "the same seed, the same link"
    assert out != releases(JitterFault(spread_s=0.06, seed=2), 500)


def test_a_burst_holds_frames_and_releases_them_together() -> None:
    out = releases(JitterFault(burst_every_s=10.0, burst_s=0.3), 260)
    ready = (np.arange(260) + 1) * FRAME_S
    held = [t for r, t in zip(ready, out, strict=True) if 10.0 <= r < 10.3]
    assert held == [pytest.approx(10.3)] * 4, "held, then all at once"
    assert [t for r, t in zip(ready, out, strict=True) if r < 10.0] == list(ready[ready < 10.0])
    assert sum(1 for r in ready if 20.0 <= r < 20.3) == 4 and out[-1] == ready[-1], "and again"


def test_nonsense_is_refused_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--jitter-ms", "-1"]) == 2
    assert "cannot be negative" in capsys.readouterr().err
    assert main(["--jitter-burst-every-s", "0.2", "--jitter-burst-ms", "300"]) == 2
    assert "further apart" in capsys.readouterr().err


async def arrival_deviations(*flags: str) -> np.ndarray:
    """Run pplex-sim with ``flags``, talk to it at speaking pace for 4 s, and return each echo
    frame's arrival minus its frame's send time, less the fastest (seconds)."""
    frames = 50
    async with sim_process(*flags) as sim:
        loop = asyncio.get_running_loop()
        sent: list[float] = []
        arrived: list[float] = []
        async with await MoshiSession.connect(sim.url, OPTIONS) as session:

            async def receive() -> None:
                got = 0
                async for event in session.events():
                    if isinstance(event, AudioEvent):
                        got += event.pcm.shape[0]
                        while len(arrived) < got // FRAME_SAMPLES:
                            arrived.append(loop.time())
                        if len(arrived) >= frames:
                            return

            receiver = asyncio.create_task(receive())
            x = tone(440, frames * FRAME_S)
            start = loop.time()
            for i in range(frames):
                await asyncio.sleep(max(0.0, start + i * FRAME_S - loop.time()))
                sent.append(loop.time())
                await session.send_frame(x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
            await asyncio.wait_for(receiver, 20)
    d = np.array(arrived[:frames]) - np.array(sent)
    return np.asarray(d - d.min(), dtype=np.float64)


async def test_a_real_pplex_sim_spreads_its_frames_only_when_asked() -> None:
    calm = await arrival_deviations()
    jittery = await arrival_deviations("--jitter-ms", "60", "--jitter-seed", "1")
    calm_spread = np.percentile(calm, 90) - np.percentile(calm, 10)
    spread = np.percentile(jittery, 90) - np.percentile(jittery, 10)
    print(f"spread p90-p10: calm {1000 * calm_spread:.0f} ms, jittery {1000 * spread:.0f} ms")
    assert spread > 0.035, f"the 60 ms jitter shows: {1000 * spread:.0f} ms"
    assert spread > calm_spread + 0.02
    assert np.max(jittery) < 0.06 + 0.1, "no more than the spread, with room for a busy machine"
