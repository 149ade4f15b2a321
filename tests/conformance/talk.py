"""Talking to the real server, directly or through the gateway: frames, conversations, timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import numpy as np

from pplex_desktop.moshi.client import (
    AudioEvent,
    ClosedEvent,
    ErrorEvent,
    MoshiSession,
    SessionOptions,
    TextEvent,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES, Pcm

OPTIONS = SessionOptions(handshake_timeout=20, open_timeout=10)
STEP_TIMEOUT = 20.0


def noise_frames(count: int, seed: int = 7) -> list[Pcm]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(FRAME_SAMPLES)).astype(np.float32) for _ in range(count)]


@dataclass
class Conversation:
    audio: list[Pcm] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    closed: ClosedEvent | None = None

    @property
    def samples(self) -> int:
        return sum(int(a.shape[0]) for a in self.audio)


async def collect(session: MoshiSession, into: Conversation, audio_frames: int = 0) -> None:
    """Record events until the session closes, or until ``audio_frames`` frames came back."""
    async for event in session.events():
        if isinstance(event, AudioEvent):
            into.audio.append(event.pcm)
            into.order.append("audio")
            if len(into.audio) == audio_frames:
                return
        elif isinstance(event, TextEvent):
            into.texts.append(event.text)
            into.order.append("text")
        elif isinstance(event, ErrorEvent):
            into.errors.append(event.message)
        elif isinstance(event, ClosedEvent):
            into.closed = event


async def converse(session: MoshiSession, frames: list[Pcm]) -> Conversation:
    """Send every frame, then close: the server answers all of them before its close frame,
    because it handles messages in order, so the count received is exact."""
    result = Conversation()
    receiver = asyncio.create_task(collect(session, result))
    async with asyncio.timeout(STEP_TIMEOUT + 0.1 * len(frames)):
        for frame in frames:
            await session.send_frame(frame)
        await session.close()
        await receiver
    return result


async def exchange(session: MoshiSession, frames: list[Pcm], expect: int) -> Conversation:
    """Send frames and read until ``expect`` frames came back, leaving the session open."""
    result = Conversation()
    async with asyncio.timeout(STEP_TIMEOUT + 0.1 * len(frames)):
        for frame in frames:
            await session.send_frame(frame)
        await collect(session, result, audio_frames=expect)
    assert result.closed is None and not result.errors, result
    return result


async def lock_step(session: MoshiSession, frames: list[Pcm]) -> list[float]:
    """Send the first frame, then one frame at a time, each after the previous answer came
    back; return each round trip in milliseconds (send to decoded answer)."""
    round_trips: list[float] = []
    events = session.events()
    assert isinstance(events, AsyncGenerator)
    await session.send_frame(frames[0])
    for frame in frames[1:]:
        sent = time.perf_counter()
        await session.send_frame(frame)
        async with asyncio.timeout(STEP_TIMEOUT):
            async for event in events:
                assert not isinstance(event, ErrorEvent | ClosedEvent), event
                if isinstance(event, AudioEvent):
                    assert event.pcm.shape[0] == FRAME_SAMPLES
                    break
        round_trips.append(1000 * (time.perf_counter() - sent))
    await events.aclose()
    return round_trips
