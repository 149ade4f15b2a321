"""pplex-sim's Kyutai flavour against a session recorded from the real server (tests/data)."""

from __future__ import annotations

import asyncio

import websockets

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.ogg import OggPage, split_pages
from tests.recorded import load_recording
from tests.sim.conftest import SimFactory


def _layout(messages: list[bytes]) -> list[list[tuple[int, int, bool, bool]]]:
    """Per audio message: each page's flags, granule and whether it is a header page."""

    def shape(page: OggPage) -> tuple[int, int, bool, bool]:
        return page.header_type, page.granule, page.is_opus_head, page.is_opus_tags

    return [
        [shape(page) for page in split_pages(m[1:])]
        for m in messages
        if proto.peek_kind(m) is proto.Kind.AUDIO
    ]


async def test_sim_sends_the_real_servers_audio_layout(make_sim: SimFactory) -> None:
    real = load_recording()
    sim = await make_sim(flavor="kyutai")
    url = (sim.url or "").replace("http", "ws") + "/api/chat"
    received: list[bytes] = []
    async with websockets.connect(url, compression=None, proxy=None) as ws:
        handshake = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(handshake, bytes)
        received.append(handshake)
        for message in real.sent:
            await ws.send(message)
        # The simulator, like the real server, answers every frame before it answers a close.
        closing = asyncio.create_task(ws.close())
        try:
            while True:
                reply = await asyncio.wait_for(ws.recv(), 5)
                assert isinstance(reply, bytes)
                received.append(reply)
        except websockets.ConnectionClosedOK:
            pass
        await closing
    assert received[0] == real.received[0] == b"\x00"
    assert _layout(received) == _layout(real.received)
