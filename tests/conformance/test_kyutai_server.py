"""Our protocol code against the real Kyutai ``moshi.server`` (tiny random weights, CPU).

What PROTOCOL.md says about the Kyutai flavour is checked here on the real bytes: a bare
handshake byte, Ogg headers glued to the first audio pages, two 40 ms pages per message,
N frames in and N - 1 out, UTF-8 text pieces, one conversation at a time.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
import websockets

from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.client import ClosedEvent, MoshiSession, SessionOptions
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusDecoder, OpusEncoder
from pplex_desktop.moshi.ogg import FLAG_BOS, OggPageReader
from tests.conformance.kyutai_env import KyutaiServer, Report
from tests.conformance.talk import (
    OPTIONS,
    STEP_TIMEOUT,
    STEP_TIMEOUT_PER_FRAME,
    Conversation,
    collect,
    converse,
    exchange,
    lock_step,
    noise_frames,
    wait_for_audio,
)
from tests.signals import tone


async def test_handshake_is_the_bare_kind_byte(kyutai: KyutaiServer) -> None:
    async with websockets.connect(
        kyutai.url + "/api/chat", compression=None, proxy=None, open_timeout=10
    ) as ws:
        first = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    assert first == b"\x00"
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        assert session.handshake == proto.Handshake()


async def test_n_frames_in_give_n_minus_one_frames_out(kyutai: KyutaiServer) -> None:
    handled_before = len(kyutai.frame_times_ms())
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        talk = await converse(session, noise_frames(12))
    assert not talk.errors
    assert talk.closed is not None and talk.closed.code == 1000
    assert [a.shape[0] for a in talk.audio] == [FRAME_SAMPLES] * 11, "Kyutai drops one frame"
    pcm = np.concatenate(talk.audio)
    assert pcm.dtype == np.float32 and np.all(np.isfinite(pcm))
    assert np.max(np.abs(pcm)) <= 1.0
    assert len(kyutai.frame_times_ms()) - handled_before == 12, "the server saw every frame"


async def test_text_pieces_are_utf8_words(kyutai: KyutaiServer) -> None:
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        talk = await converse(session, noise_frames(10, seed=3))
    assert not talk.errors, "every text message is valid UTF-8 (proto.decode checks)"
    assert talk.texts, "a random model still speaks"
    for piece in talk.texts:
        assert piece and "\u2581" not in piece, "the server turns sentencepiece's ▁ into spaces"
    assert any(piece.startswith(" ") for piece in talk.texts), "word starts carry a space"
    # Each model step sends its audio first, then the text token sampled with it.
    assert talk.order[0] == "audio"
    assert "text,text" not in ",".join(talk.order)


async def test_server_stream_layout_matches_protocol_md(kyutai: KyutaiServer) -> None:
    messages: list[bytes] = []
    encoder = OpusEncoder()
    async with websockets.connect(
        kyutai.url + "/api/chat", compression=None, proxy=None, open_timeout=10
    ) as ws:
        assert await asyncio.wait_for(ws.recv(), STEP_TIMEOUT) == b"\x00"
        for frame in noise_frames(6):
            await ws.send(proto.encode(proto.Audio(encoder.encode(frame))))
        # Close only once the five answers are in: the server stops answering when it reads
        # the close, and under load it is still behind.
        closing: asyncio.Task[None] | None = None
        with pytest.raises(websockets.ConnectionClosedOK):
            while True:
                message = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
                assert isinstance(message, bytes)
                messages.append(message)
                if closing is None and sum(m[:1] == b"\x01" for m in messages) == 5:
                    closing = asyncio.create_task(ws.close())
        assert closing is not None
        await asyncio.wait_for(closing, STEP_TIMEOUT)
    decoded = [proto.decode(m) for m in messages]
    assert {type(m) for m in decoded} <= {proto.Audio, proto.Text}
    audio = [m.data for m in decoded if isinstance(m, proto.Audio)]
    assert len(audio) == 5
    reader = OggPageReader()
    decoder = OpusDecoder()
    granules: list[int] = []
    for index, payload in enumerate(audio):
        pages = reader.feed(payload)
        assert reader.pending == 0, "every message ends on a page boundary"
        assert b"".join(p.to_bytes() for p in pages) == payload
        if index == 0:
            assert pages[0].is_opus_head and pages[0].header_type & FLAG_BOS
            assert pages[1].is_opus_tags
            pages = pages[2:]
            assert pages, "the first message glues the headers to the first audio pages"
        assert len(pages) == 2, "one 80 ms frame as two 40 ms pages"
        granules += [p.granule for p in pages]
        assert decoder.decode(payload).shape[0] == FRAME_SAMPLES
    # Granules count 48 kHz samples: 1920 per 40 ms page.
    assert np.diff(granules).tolist() == [1920] * (len(granules) - 1)


async def test_unknown_kinds_and_empty_messages_are_skipped(kyutai: KyutaiServer) -> None:
    unknown_before = kyutai.log_text().count("unknown message kind")
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        frames = noise_frames(4)
        await session.send_frame(frames[0])
        await session.send_message(proto.Control(proto.ControlAction.PAUSE))
        await session.send_message(proto.Ping())
        talk = await converse(session, frames[1:], expect=3)
    assert len(talk.audio) == 3
    assert kyutai.log_text().count("unknown message kind") - unknown_before == 2


async def test_prompt_query_parameters_are_ignored(kyutai: KyutaiServer) -> None:
    """A gateway may forward PersonaPlex's parameters to a Kyutai server: it does not mind."""
    options = SessionOptions(
        text_prompt="You are kind.", voice_prompt="NATF2.pt", seed=42, handshake_timeout=20
    )
    async with await MoshiSession.connect(kyutai.url, options) as session:
        talk = await converse(session, noise_frames(3))
    assert len(talk.audio) == 2


async def test_odd_blocks_and_flush_are_framed_for_the_server(kyutai: KyutaiServer) -> None:
    x = tone(440, 1.0)  # 12.5 frames: 12 whole ones plus a half frame padded by flush()
    result = Conversation()
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        receiver = asyncio.create_task(collect(session, result))
        async with asyncio.timeout(STEP_TIMEOUT + 13 * STEP_TIMEOUT_PER_FRAME):
            for start in range(0, len(x), 1000):
                await session.send_pcm(x[start : start + 1000])
            await session.flush()
            await wait_for_audio(result, receiver, 12)
            await session.close()
            await receiver
        assert session.frames_sent == 13
    assert result.samples == 12 * FRAME_SAMPLES


async def test_second_client_waits_silently_then_is_served(kyutai: KyutaiServer) -> None:
    accepted = kyutai.count("accepted connection")
    first = await MoshiSession.connect(kyutai.url, OPTIONS)
    second = asyncio.create_task(MoshiSession.connect(kyutai.url, OPTIONS))
    try:
        await kyutai.wait_for_count("accepted connection", accepted + 2, STEP_TIMEOUT)
        # The second socket is open and parked on the server's lock; while the first talks, it
        # hears nothing at all, not even a handshake.
        assert len((await exchange(first, noise_frames(5), expect=4)).audio) == 4
        assert not second.done(), "a waiting caller gets no handshake and no message"
        await first.close()
        async with await asyncio.wait_for(second, STEP_TIMEOUT) as session:
            assert session.handshake == proto.Handshake()
            later = await converse(session, noise_frames(5, seed=11))
        assert len(later.audio) == 4
    finally:
        await first.close()
        second.cancel()
        # Whoever got the lock must let go of it, or every later test waits for it.
        with contextlib.suppress(BaseException):
            await (await second).close()


@pytest.mark.server_faults_expected
async def test_corrupt_input_stream_drops_the_connection(kyutai: KyutaiServer) -> None:
    """Unlike pplex-sim (close 1007), the real handler raises inside sphn and the socket just
    drops, with no close frame; the lock is released and the next caller is served."""
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        talk = Conversation()
        receiver = asyncio.create_task(collect(session, talk))
        frames = noise_frames(2)
        await session.send_frame(frames[0])
        await session.send_frame(frames[1])
        await session.send_message(proto.Audio(b"not an Ogg page, " * 8))
        await asyncio.wait_for(receiver, STEP_TIMEOUT)
    assert talk.closed == ClosedEvent(None, "connection lost")
    assert len(talk.audio) == 1, "frames before the damage were answered"
    assert "unexpected ogg capture pattern" in kyutai.log_text()
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        assert len((await converse(session, noise_frames(3))).audio) == 2


async def test_round_trip_one_frame_at_a_time(
    kyutai: KyutaiServer, conformance_report: Report
) -> None:
    """Lock step: each frame after the first brings exactly one frame back."""
    async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
        conformance_report.round_trips_ms += await lock_step(session, noise_frames(16, seed=5))
    assert len(conformance_report.round_trips_ms) >= 15
