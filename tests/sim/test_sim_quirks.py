"""The upstream quirks pplex-sim reproduces, and how our client reports each one."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import numpy as np
import pytest
import websockets

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.client import (
    AudioEvent,
    ClosedEvent,
    ConnectError,
    ErrorEvent,
    HandshakeError,
    MoshiSession,
    SessionOptions,
    chat_url,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from tests.signals import tone
from tests.sim.conftest import SimFactory
from tests.sim.process import sim_process

GOOD: dict[str, Any] = {"text_prompt": "Be brief.", "voice_prompt": "NATM1.pt"}


@pytest.mark.parametrize(
    "query",
    [
        {"text_prompt": "Be brief."},
        {"text_prompt": "Be brief.", "voice_prompt": "../x"},
        {"text_prompt": "Be brief.", "voice_prompt": "NATM9.pt"},
        {"text_prompt": "", "voice_prompt": "NATM1.pt"},
        {"voice_prompt": "NATM1.pt"},
        {**GOOD, "seed": "42"},
    ],
    ids=["no-voice", "traversal", "unknown-voice", "empty-prompt", "no-prompt", "seed"],
)
async def test_personaplex_closes_without_handshake(
    make_sim: SimFactory, query: dict[str, str]
) -> None:
    sim = await make_sim(flavor="personaplex")
    options = SessionOptions(handshake_timeout=5, extra_query=query)
    with pytest.raises(HandshakeError, match="closed the connection before the handshake"):
        await MoshiSession.connect(sim.url or "", options)
    assert sim.stats.refused == 1 and sim.stats.sessions_started == 0


async def test_kyutai_ignores_the_query(make_sim: SimFactory) -> None:
    sim = await make_sim(flavor="kyutai")
    async with await MoshiSession.connect(sim.url or "", SessionOptions(extra_query={"seed": "1"})):
        pass
    assert sim.stats.refused == 0


async def _raw(sim_url: str) -> websockets.ClientConnection:
    url = sim_url.replace("http", "ws") + "/api/chat?text_prompt=Be+brief.&voice_prompt=NATM1.pt"
    ws = await websockets.connect(url, compression=None, proxy=None)
    assert await ws.recv() == b"\x00"
    return ws


async def test_empty_and_unknown_messages_are_skipped(make_sim: SimFactory) -> None:
    sim = await make_sim()
    ws = await _raw(sim.url or "")
    enc = OpusEncoder()
    await ws.send(b"")
    await ws.send(b"\x09hello")
    await ws.send(b"\x03\x01")
    await ws.send(proto.encode(proto.Audio(enc.encode(tone(440, 0.08)))))
    # PersonaPlex sends its two Ogg header pages first; the third audio message is the echo.
    audio: list[bytes] = []
    while len(audio) < 3:
        msg = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(msg, bytes)
        if proto.peek_kind(msg) is proto.Kind.AUDIO:
            audio.append(msg)
    assert sim.stats.frames_out == 1
    await ws.close()


async def test_truncated_ogg_ends_the_session_with_1007(make_sim: SimFactory) -> None:
    sim = await make_sim()
    ws = await _raw(sim.url or "")
    first = OpusEncoder().encode(tone(440, 0.08))
    await ws.send(b"\x01" + first[:30] + b"garbage-not-ogg" * 4)
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007


async def test_handshake_timeout_is_a_sentence(make_sim: SimFactory) -> None:
    sim = await make_sim(prompt_delay_s=3)
    options = SessionOptions(**GOOD, handshake_timeout=0.2)
    with pytest.raises(HandshakeError, match=r"no handshake within 0\.2 s"):
        await MoshiSession.connect(sim.url or "", options)


async def test_unreachable_server_is_a_sentence() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError, match=f"Could not connect to ws://127.0.0.1:{port}/api/chat"):
        await MoshiSession.connect(f"http://127.0.0.1:{port}", SessionOptions(open_timeout=2))


async def _drain(session: MoshiSession, frames: int) -> list[object]:
    events: list[object] = []

    async def pump() -> None:
        for _ in range(frames):
            await session.send_frame(np.zeros(FRAME_SAMPLES, np.float32))

    sender = asyncio.create_task(pump())
    async for event in session.events():
        events.append(event)
        if isinstance(event, ClosedEvent):
            break
    await asyncio.gather(sender, return_exceptions=True)
    return events


async def test_fault_close_after_frames_looks_like_a_crash(make_sim: SimFactory) -> None:
    sim = await make_sim(close_after_frames=4)
    session = await MoshiSession.connect(sim.url or "", SessionOptions(**GOOD))
    events = await asyncio.wait_for(_drain(session, 10), 5)
    assert sum(isinstance(e, AudioEvent) for e in events) == 4
    closed = events[-1]
    assert isinstance(closed, ClosedEvent) and closed.code in (None, 1006)


async def test_fault_error_message_then_close(make_sim: SimFactory) -> None:
    sim = await make_sim(error_after_frames=2)
    session = await MoshiSession.connect(sim.url or "", SessionOptions(**GOOD))
    events = await asyncio.wait_for(_drain(session, 10), 5)
    assert ErrorEvent("simulated model failure") in events
    assert events[-1] == ClosedEvent(1011, "simulated model failure")


def test_chat_url_normalises_bases() -> None:
    assert chat_url("http://h:1").startswith("ws://h:1/api/chat")
    assert chat_url("https://h:1/").startswith("wss://h:1/api/chat")
    assert (
        chat_url("ws://h:1/api/chat?x=1", SessionOptions(seed=3)) == "ws://h:1/api/chat?x=1&seed=3"
    )
    with pytest.raises(ConnectError, match="not a server address"):
        chat_url("h:1")


async def test_pplex_sim_command_serves_and_stops_cleanly() -> None:
    async with sim_process() as sim:
        assert "is listening on http://127.0.0.1:" in sim.ready_line
        async with await MoshiSession.connect(sim.url, SessionOptions(**GOOD)) as session:
            await session.send_pcm(tone(440, 0.16))
            async for event in session.events():
                if isinstance(event, AudioEvent):
                    break
    # Leaving sim_process stops it with SIGTERM and fails unless it exits with 0.
