"""A short conversation through MoshiSession, shared by the sim and gateway tiers."""

from __future__ import annotations

import asyncio

import numpy as np

from pplex_desktop.moshi.client import AudioEvent, ClosedEvent, MoshiSession, TextEvent
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE


async def converse(
    session: MoshiSession,
    pcm: np.ndarray,
    *,
    expected_frames: int,
    paced: bool = True,
    lead_s: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """Send ``pcm`` a frame at a time (at speaking pace unless ``paced`` is False, up to
    ``lead_s`` ahead), and collect ``expected_frames`` of answer and the text pieces."""
    audio: list[np.ndarray] = []
    texts: list[str] = []

    async def receive() -> None:
        async for event in session.events():
            if isinstance(event, AudioEvent):
                audio.append(event.pcm)
                if sum(len(a) for a in audio) >= expected_frames * FRAME_SAMPLES:
                    return
            elif isinstance(event, TextEvent):
                texts.append(event.text)
            elif isinstance(event, ClosedEvent):
                return

    receiver = asyncio.create_task(receive())
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(0, len(pcm), FRAME_SAMPLES):
        if paced:
            await asyncio.sleep(max(0.0, start + i / SAMPLE_RATE - lead_s - loop.time()))
        await session.send_pcm(pcm[i : i + FRAME_SAMPLES])
    await asyncio.wait_for(receiver, 15)
    return (np.concatenate(audio) if audio else np.zeros(0, np.float32)), texts
