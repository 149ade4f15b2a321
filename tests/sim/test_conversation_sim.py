"""A Conversation against pplex-sim in real time, with a fake sound card paced by the clock.

The microphone delivers 80 ms blocks and the speaker asks for 20 ms blocks on their own
schedules, as PortAudio would, so the jitter buffer sees real network timing.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pplex_desktop.audio.conversation import Conversation, ConversationConfig, ConversationState
from pplex_desktop.audio.fake import FakeDuplexDevice
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from pplex_desktop.sim.sim import KYUTAI_SPEECH
from tests.conversation_helpers import EventLog
from tests.signals import dominant_frequency, rms, tone
from tests.sim.conftest import SimFactory

F = FRAME_SAMPLES
S = ConversationState
PROMPT = "Answer like a pirate."
FRAMES = 25  # two seconds


async def _speaker(device: FakeDuplexDevice, out: list[np.ndarray], drained: asyncio.Event) -> None:
    """Pull 20 ms every 20 ms until ``drained`` is set and nothing is left to play."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while not (drained.is_set() and device.jitter.depth == 0):
        k += 1
        await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))  # pacing, not waiting
        out.append(device.pull(480))


@pytest.mark.parametrize("flavor", ["personaplex", "kyutai"])
async def test_tone_round_trip_in_real_time(make_sim: SimFactory, flavor: str) -> None:
    sim = await make_sim(flavor=flavor, echo_delay_frames=1)
    device = FakeDuplexDevice()
    log = EventLog()
    cfg = ConversationConfig(url=sim.url or "", text_prompt=PROMPT, voice_prompt="NATM0.pt")
    conv = Conversation(cfg, device, log)
    task = asyncio.create_task(conv.run())
    try:
        await log.wait_state(S.LIVE)
        played: list[np.ndarray] = []
        all_received = asyncio.Event()
        speaker = asyncio.create_task(_speaker(device, played, all_received))
        x = tone(523, FRAMES * F / 24_000, amplitude=0.5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(FRAMES):
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.08 - loop.time()))
            device.inject(x[i * F : (i + 1) * F])
        expected = FRAMES - 1 if flavor == "kyutai" else FRAMES  # Kyutai drops the first frame
        await device.wait_received(expected * F)
        all_received.set()
        await asyncio.wait_for(speaker, 10)
    finally:
        await conv.hang_up()
    assert await task is S.ENDED

    y = np.concatenate(played)
    audible = np.flatnonzero(np.abs(y) > 0.05)
    assert audible.size, "the tone came back out of the speaker"
    body = y[audible[0] + F : audible[-1] - F]
    assert len(body) > 10 * F
    assert dominant_frequency(body) == pytest.approx(523, abs=3)
    assert rms(body) == pytest.approx(0.5 / np.sqrt(2), rel=0.1), "no gaps inside the tone"
    stats = conv.stats()
    assert stats.dropped_ms == 0
    assert stats.rtt_ms is not None and stats.rtt_ms < 500
    spoken = "".join(t.text for t in log.texts)
    if flavor == "personaplex":
        assert spoken == " " + PROMPT
    else:
        assert KYUTAI_SPEECH.startswith(spoken.strip())
        assert spoken
    assert log.states == [S.CONNECTING, S.LIVE, S.ENDED]
