"""pplex-sim and our client over real sockets, in both server flavours."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pplex_desktop.moshi.client import (
    MoshiSession,
    SessionOptions,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from tests.signals import dominant_frequency, tone
from tests.sim.conftest import SimFactory
from tests.talk import converse

PROMPT = "You are a sarcastic robot who loves tea."
OPTIONS = SessionOptions(text_prompt=PROMPT, voice_prompt="NATF2.pt", handshake_timeout=5)


@pytest.mark.parametrize("flavor", ["personaplex", "kyutai"])
@pytest.mark.parametrize("realtime", [False, True], ids=["fast", "realtime"])
async def test_tone_comes_back_intact(make_sim: SimFactory, flavor: str, realtime: bool) -> None:
    sim = await make_sim(flavor=flavor, echo_delay_frames=2)
    x = tone(440, 5.0)
    sent = len(x) // FRAME_SAMPLES  # 62 whole frames; the last half frame stays in the framer
    # Kyutai drops the first input frame (125 in, 124 out); PersonaPlex answers every frame.
    expected = sent - 1 if flavor == "kyutai" else sent
    async with await MoshiSession.connect(sim.url or "", OPTIONS) as session:
        y, texts = await converse(session, x, paced=realtime, expected_frames=expected)
    await sim.wait_until(lambda s: s.sessions_finished == 1)
    assert len(y) == expected * FRAME_SAMPLES
    assert sim.stats.frames_out == expected
    assert np.max(np.abs(y[: 2 * FRAME_SAMPLES])) < 0.01, "the echo delay is two frames"
    assert dominant_frequency(y[3 * FRAME_SAMPLES :]) == pytest.approx(440, abs=3)
    spoken = "".join(texts)
    if flavor == "personaplex":
        assert spoken == " " + PROMPT
    else:
        assert spoken.startswith(" Hello, this is the simulated Moshi")


async def test_echo_lines_up_with_the_input(make_sim: SimFactory) -> None:
    sim = await make_sim(echo_delay_frames=3)
    rng = np.random.default_rng(7)
    x = (0.3 * rng.standard_normal(FRAME_SAMPLES * 20)).astype(np.float32)
    async with await MoshiSession.connect(sim.url or "", OPTIONS) as session:
        y, _ = await converse(session, x, paced=False, expected_frames=20)
    lag = int(np.argmax(np.correlate(y, x[:4000], mode="valid")))
    # Three frames, plus Opus's look-ahead once per encode/decode pass (two passes, ~6.5 ms each).
    assert 0 <= lag - 3 * FRAME_SAMPLES < 400


async def test_second_caller_waits_silently_then_gets_its_turn(make_sim: SimFactory) -> None:
    sim = await make_sim()
    first = await MoshiSession.connect(sim.url or "", OPTIONS)
    second = asyncio.create_task(MoshiSession.connect(sim.url or "", OPTIONS))
    await sim.wait_until(lambda s: s.waiting == 1)
    assert not second.done(), "upstream gives a waiting caller no handshake and no message"
    await first.close()
    async with await asyncio.wait_for(second, 5) as session:
        y, texts = await converse(session, tone(440, 0.8), paced=False, expected_frames=10)
    assert len(y) == 10 * FRAME_SAMPLES and texts
    assert sim.stats.sessions_started == 2


async def test_prompt_time_discards_early_audio(make_sim: SimFactory) -> None:
    """Why the client never sends before the handshake: PersonaPlex drops that audio."""
    import websockets

    from pplex_desktop.moshi import protocol as proto
    from pplex_desktop.moshi.codec import OpusEncoder

    sim = await make_sim(prompt_delay_s=0.3)
    url = (sim.url or "").replace("http", "ws") + "/api/chat?text_prompt=hi&voice_prompt=NATF0.pt"
    async with websockets.connect(url, compression=None, proxy=None) as ws:
        enc = OpusEncoder()
        await ws.send(proto.encode(proto.Audio(enc.encode(tone(440, 0.08)))))
        assert await ws.recv() == b"\x00"
        for _ in range(3):
            await ws.send(proto.encode(proto.Audio(enc.encode(tone(440, 0.08)))))
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007
