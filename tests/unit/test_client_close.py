"""MoshiSession.close() against a real socket whose server still sends after our close.

The server here is a small aiohttp one on loopback: it shakes hands, answers the first audio
message with a burst of text messages, and replies to our close only after reading it, behind
the burst, as both model servers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.client import ClosedEvent, MoshiSession, SessionOptions, TextEvent
from pplex_desktop.moshi.codec import FRAME_SAMPLES

# Well above websockets' queue of 16 unread messages, past which it stops reading the socket.
BURST = 60
STEP_S = 5.0


@dataclass
class BurstServer:
    url: str = ""
    burst_sent: asyncio.Event = field(default_factory=asyncio.Event)
    close_codes: list[int | None] = field(default_factory=list)


@pytest.fixture
async def burst_server() -> AsyncIterator[BurstServer]:
    state = BurstServer()

    async def chat(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(proto.encode(proto.Handshake()))
        async for message in ws:
            if message.type == WSMsgType.BINARY and not state.burst_sent.is_set():
                for i in range(BURST):
                    await ws.send_bytes(proto.encode(proto.Text(f" word{i}")))
                state.burst_sent.set()
        state.close_codes.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/api/chat", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"ws://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def _session_with_burst(server: BurstServer) -> MoshiSession:
    session = await MoshiSession.connect(server.url, SessionOptions(handshake_timeout=STEP_S))
    await session.send_frame(np.zeros(FRAME_SAMPLES, np.float32))
    await asyncio.wait_for(server.burst_sent.wait(), STEP_S)
    return session


async def test_close_with_no_reader_drains_and_gets_the_servers_close(
    burst_server: BurstServer,
) -> None:
    """Unread, the burst would pause reading and the close would end as a lost connection
    (1006) after websockets' 10 s close timeout."""
    session = await _session_with_burst(burst_server)
    async with asyncio.timeout(STEP_S):
        await session.close()
    assert session.close_code == 1000
    assert burst_server.close_codes == [1000]


async def test_close_beside_a_reader_leaves_every_message_to_it(
    burst_server: BurstServer,
) -> None:
    session = await _session_with_burst(burst_server)
    texts: list[str] = []
    closed: list[ClosedEvent] = []
    reading = asyncio.Event()

    async def read() -> None:
        async for event in session.events():
            if isinstance(event, TextEvent):
                texts.append(event.text)
                reading.set()
            elif isinstance(event, ClosedEvent):
                closed.append(event)

    reader = asyncio.create_task(read())
    async with asyncio.timeout(STEP_S):
        await reading.wait()  # the reader is under way, and back in events() for more
        await session.close()
        await reader
    assert texts == [f" word{i}" for i in range(BURST)]
    assert closed == [ClosedEvent(1000, "")]


async def test_events_after_a_draining_close_only_report_the_end(
    burst_server: BurstServer,
) -> None:
    session = await _session_with_burst(burst_server)
    closing = asyncio.create_task(session.close())
    await asyncio.sleep(0)  # close() has started draining
    async with asyncio.timeout(STEP_S):
        events = [event async for event in session.events()]
        await closing
    assert events == [ClosedEvent(1000, "")]


async def test_close_while_its_reader_is_cancelled_still_gets_the_servers_close(
    burst_server: BurstServer,
) -> None:
    """When the app quits, every task of the conversation's loop is cancelled at once: the
    reader close() counted on for the server's close frame goes away, and close() used to wait
    the whole close timeout for it (the app then missed its 5 s exit)."""
    session = await _session_with_burst(burst_server)
    reading = asyncio.Event()

    async def read() -> None:
        async for event in session.events():
            if isinstance(event, TextEvent):
                reading.set()

    reader = asyncio.create_task(read())
    async with asyncio.timeout(STEP_S):
        await reading.wait()
        await asyncio.sleep(0)  # back in events(), waiting for the next message
        closing = asyncio.create_task(session.close())
        await asyncio.sleep(0)  # close() has sent its frame and counts on the reader
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
    async with asyncio.timeout(1.0):  # well under the 10 s close timeout
        await closing
    assert session.close_code == 1000
    assert burst_server.close_codes == [1000]
