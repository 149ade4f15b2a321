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
# The real server handled a frame in 2.5 s at worst on a loaded CPU (80 ms when idle).
STEP_TIMEOUT_PER_FRAME = 1.0


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
    # Set after each event, so a caller can await a count instead of polling for it.
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def samples(self) -> int:
        return sum(int(a.shape[0]) for a in self.audio)


async def collect(session: MoshiSession, into: Conversation, audio_frames: int = 0) -> None:
    """Record events until the session closes, or until ``audio_frames`` frames came back."""
    try:
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
            into.changed.set()
    finally:
        into.changed.set()


async def wait_for_audio(into: Conversation, receiver: asyncio.Task[None], frames: int) -> None:
    """Wait until ``frames`` answer frames are in ``into``, or its ``receiver`` ended."""
    while len(into.audio) < frames and not receiver.done():
        await into.changed.wait()
        into.changed.clear()


async def converse(
    session: MoshiSession, frames: list[Pcm], expect: int | None = None
) -> Conversation:
    """Send every frame, read until ``expect`` frames came back (by default N - 1: the Kyutai
    server drops the first), then close, keeping what arrives until the server's close frame.

    Closing first and counting afterwards is a race: the server stops answering once it reads
    our close, and on a loaded CPU it is still working through the frames then (seconds
    behind, at worst). A frame beyond ``expect`` still shows up, after the close; a session
    that ends early returns what it got, for the caller's assertions to report."""
    expect = len(frames) - 1 if expect is None else expect
    result = Conversation()
    receiver = asyncio.create_task(collect(session, result))
    try:
        async with asyncio.timeout(STEP_TIMEOUT + STEP_TIMEOUT_PER_FRAME * len(frames)):
            for frame in frames:
                await session.send_frame(frame)
            await wait_for_audio(result, receiver, expect)
            await session.close()
            await receiver
    except TimeoutError:
        raise AssertionError(
            f"{len(result.audio)} of {expect} answer frames came back in time: {result}"
        ) from None
    finally:
        receiver.cancel()
    return result


async def exchange(session: MoshiSession, frames: list[Pcm], expect: int) -> Conversation:
    """Send frames and read until ``expect`` frames came back, leaving the session open."""
    result = Conversation()
    async with asyncio.timeout(STEP_TIMEOUT + STEP_TIMEOUT_PER_FRAME * len(frames)):
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
