"""The gateway in front of the real Kyutai server (tiny random weights, CPU).

What the gateway tier proves against pplex-sim is checked here against the real bytes: the
native relay is byte for byte (read off the wire between gateway and server), /ws/stream turns
the real Ogg stream into PCM, a second caller is queued by the gateway instead of hanging on the
server's lock, and a hang-up closes the server's socket cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import time
from typing import Any

import numpy as np
import pytest
import websockets

from pplex_desktop.gateway.live import relay
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.moshi.codec import FRAME_SAMPLES, OpusEncoder
from pplex_desktop.moshi.ogg import OggPageReader
from tests.conformance.gateway_support import PERSONA, VOICE, GatewayFactory, KyutaiGateway
from tests.conformance.kyutai_env import KyutaiServer, Report
from tests.conformance.talk import (
    OPTIONS,
    STEP_TIMEOUT,
    Conversation,
    exchange,
    lock_step,
    noise_frames,
)
from tests.conformance.wire_tap import OP_CLOSE, WireTap, binary, messages

DONE = "done with connection"
CLOSED = "connection closed"
ACCEPTED = "accepted connection"


def via(key: str, **extra: str) -> SessionOptions:
    return SessionOptions(
        text_prompt=PERSONA,
        voice_prompt=VOICE,
        api_key=key,
        handshake_timeout=STEP_TIMEOUT,
        open_timeout=10,
        extra_query=extra,
    )


def _check_audio(talk: Conversation, frames: int) -> None:
    assert [a.shape[0] for a in talk.audio] == [FRAME_SAMPLES] * frames
    pcm = np.concatenate(talk.audio)
    assert pcm.dtype == np.float32 and np.all(np.isfinite(pcm)) and np.max(np.abs(pcm)) <= 1.0


async def test_moshi_session_through_api_chat(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer
) -> None:
    handled = len(kyutai.frame_times_ms())
    accepted, done = kyutai.count(ACCEPTED), kyutai.count(DONE)
    async with await MoshiSession.connect(kyutai_gateway.url, via(kyutai_gateway.new_key())) as s:
        assert s.handshake == proto.Handshake(), "the server's bare handshake byte, relayed"
        talk = await exchange(s, noise_frames(12), expect=11)
        await kyutai.wait_for_frames(handled + 12, STEP_TIMEOUT)
    _check_audio(talk, 11)
    assert talk.texts, "text pieces come through"
    assert all(piece and "\u2581" not in piece for piece in talk.texts)
    await kyutai.wait_for_count(DONE, done + 1, STEP_TIMEOUT)
    assert kyutai.count(ACCEPTED) == accepted + 1, "one backend connection per session"
    await kyutai_gateway.wait_sessions(lambda r: not r.sessions)


# -- byte for byte ----------------------------------------------------------------------------


async def _raw_chat(url: str, frames: int, kyutai: KyutaiServer) -> tuple[list[bytes], list[bytes]]:
    """Send ``frames`` frames as one client would; read until frames - 1 came back and the
    server logged every frame; then hang up. Returns (messages sent, messages received)."""
    handled, done = len(kyutai.frame_times_ms()), kyutai.count(DONE)
    encoder = OpusEncoder()
    sent = [proto.encode(proto.Audio(encoder.encode(f))) for f in noise_frames(frames, seed=21)]
    received: list[bytes] = []
    async with websockets.connect(url, compression=None, proxy=None, open_timeout=10) as ws:
        async with asyncio.timeout(STEP_TIMEOUT):
            handshake = await ws.recv()
            assert isinstance(handshake, bytes)
            received.append(handshake)
            for message in sent:
                await ws.send(message)
            while sum(m[:1] == b"\x01" for m in received) < frames - 1:
                reply = await ws.recv()
                assert isinstance(reply, bytes)
                received.append(reply)
        await kyutai.wait_for_frames(handled + frames, STEP_TIMEOUT)
    await kyutai.wait_for_count(DONE, done + 1, STEP_TIMEOUT)
    return sent, received


def _layout(received: list[bytes]) -> list[tuple[str, ...]]:
    """Each audio message as the kinds of Ogg pages it holds (head, tags, audio granule steps)."""
    reader = OggPageReader()
    out: list[tuple[str, ...]] = []
    last = 0
    for message in received:
        if message[:1] != b"\x01":
            continue
        pages = reader.feed(message[1:])
        assert reader.pending == 0, "every message ends on a page boundary"
        kinds: list[str] = []
        for page in pages:
            if page.is_opus_head or page.is_opus_tags:
                kinds.append(f"{'head' if page.is_opus_head else 'tags'}:{len(page.to_bytes())}")
            else:
                kinds.append(f"audio+{page.granule - last}")
                last = page.granule
        out.append(tuple(kinds))
    return out


async def test_api_chat_relays_the_servers_bytes_unchanged(
    make_kyutai_gateway: GatewayFactory, kyutai: KyutaiServer
) -> None:
    """The wire between gateway and server is recorded: what the server sent is what the client
    got, what the client sent is what the server got. A direct session with the same input in
    the same test gives the same message structure (the random model's content differs)."""
    frames = 8
    tap = WireTap(kyutai.host, kyutai.port)
    await tap.start()
    try:
        gw = await make_kyutai_gateway(backend_url=tap.url)
        url = gw.ws_url + f"/api/chat?api_key={gw.new_key()}&voice={VOICE}"
        sent, through = await _raw_chat(url, frames, kyutai)
        [wire] = tap.chats()
        await asyncio.wait_for(wire.finished.wait(), STEP_TIMEOUT)
    finally:
        await tap.stop()
    _sent_direct, direct = await _raw_chat(kyutai.url + "/api/chat", frames, kyutai)

    assert binary(wire.up, masked=True) == sent, "the server got the client's bytes unchanged"
    from_server = binary(wire.down, masked=False)
    assert through == from_server[: len(through)], "the client got the server's bytes unchanged"
    assert all(m[:1] == b"\x02" for m in from_server[len(through) :]), "at most a last text"
    assert sum(m[:1] == b"\x01" for m in from_server) == frames - 1, "N in, N - 1 out, on the wire"
    # The gateway closed the server's socket with a close handshake, not a dropped connection.
    assert messages(wire.up, masked=True)[-1] == (OP_CLOSE, struct.pack("!H", 1000))
    assert messages(wire.down, masked=False)[-1] == (OP_CLOSE, struct.pack("!H", 1000))

    assert through[0] == direct[0] == b"\x00"
    assert _layout(through) == _layout(direct)
    first_kinds = [kind.split(":")[0].split("+")[0] for kind in _layout(through)[0]]
    assert first_kinds == ["head", "tags", "audio", "audio"], "headers glued to the first frame"
    for received in (through, direct):
        texts = [proto.decode(m) for m in received if m[:1] == b"\x02"]
        assert all(isinstance(t, proto.Text) and t.text for t in texts)


async def test_hanging_up_mid_answer_closes_the_server_socket_cleanly(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller who hangs up while the model still has frames to answer: the gateway must close
    the server's socket with a close handshake, so the server finishes those frames and ends
    its handler normally instead of raising on a dropped connection.

    The gateway waits CLOSE_GRACE_S (2 s) for that. On a loaded CPU the real server took up to
    2.8 s for one frame, so the backlog of five can outlast any fixed grace: the test gives the
    gateway as long as it gives every step, since what it checks is the close handshake, not
    how long a slow server is waited for."""
    monkeypatch.setattr(relay, "CLOSE_GRACE_S", STEP_TIMEOUT)
    handled, closed, done = (
        len(kyutai.frame_times_ms()),
        kyutai.count(CLOSED),
        kyutai.count(DONE),
    )
    log_before = len(kyutai.log_text())
    async with await MoshiSession.connect(kyutai_gateway.url, via(kyutai_gateway.new_key())) as s:
        talk = await exchange(s, noise_frames(6), expect=1)
    _check_audio(talk, 1)
    await kyutai.wait_for_count(CLOSED, closed + 1, STEP_TIMEOUT)
    try:
        # Logged right after "connection closed" when the handler ends normally, never when
        # it raised.
        await kyutai.wait_for_count(DONE, done + 1, STEP_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"The server's handler raised:\n{kyutai.log_text()[log_before:][-2000:]}")
    new = kyutai.log_text()[log_before:]
    assert "Traceback" not in new and "Cannot write to closing transport" not in new, new[-2000:]
    assert len(kyutai.frame_times_ms()) - handled == 6, "the server answered all it was sent"
    async with await MoshiSession.connect(kyutai_gateway.url, via(kyutai_gateway.new_key())) as s:
        _check_audio(await exchange(s, noise_frames(3), expect=2), 2)


# -- /ws/stream ---------------------------------------------------------------------------------

FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}


def _to_wire(pcm: np.ndarray, fmt: str) -> bytes:
    if fmt == "s16le":
        return bytes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return bytes(pcm.astype("<f4").tobytes())


async def _next_json(ws: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    assert isinstance(message, str), f"expected a JSON text message, got {len(message)} bytes"
    data: dict[str, Any] = json.loads(message)
    return data


@pytest.mark.parametrize(("fmt", "ending"), [("s16le", "client"), ("f32le", "admin")])
async def test_ws_stream_pcm_end_to_end(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer, fmt: str, ending: str
) -> None:
    gw = kyutai_gateway
    dtype = FORMATS[fmt]
    frames = 10
    handled, done = len(kyutai.frame_times_ms()), kyutai.count(DONE)
    pcm = np.concatenate(noise_frames(frames, seed=31))
    url = gw.ws_url + f"/ws/stream?api_key={gw.new_key()}&persona=Hello&voice={VOICE}&format={fmt}"
    audio: list[np.ndarray] = []
    texts: list[str] = []
    async with websockets.connect(url, compression=None, proxy=None, open_timeout=10) as ws:
        assert await _next_json(ws) == {"type": "ready"}
        for start in range(0, len(pcm), 1000):  # blocks that are not whole frames
            await ws.send(_to_wire(pcm[start : start + 1000], fmt))
        async with asyncio.timeout(STEP_TIMEOUT):
            while len(audio) < frames - 1:
                message = await ws.recv()
                if isinstance(message, bytes):
                    assert len(message) == FRAME_SAMPLES * dtype.itemsize, "80 ms per message"
                    audio.append(np.frombuffer(message, dtype=dtype))
                else:
                    data = json.loads(message)
                    assert data["type"] == "text", data
                    texts.append(data["text"])
        await kyutai.wait_for_frames(handled + frames, STEP_TIMEOUT)
        if ending == "client":
            await ws.close()
            assert ws.close_code == 1000
        else:
            async with await gw.admin("GET", "/admin/sessions") as resp:
                [live] = (await resp.json())["active"]
            async with await gw.admin("DELETE", f"/admin/sessions/{live['id']}") as resp:
                assert resp.status == 200
            tail: list[dict[str, Any]] = []
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    data = await _next_json(ws)
                    if data["type"] == "text":
                        texts.append(data["text"])
                    else:
                        tail.append(data)
            assert [(m["type"], m.get("code", m.get("reason"))) for m in tail] == [
                ("error", "ended_by_gateway"),
                ("end", "ended_by_gateway"),
            ]
            assert ws.close_code == 1008 and ws.close_reason == tail[-1]["message"]
    assert len(audio) == frames - 1
    samples = np.concatenate(audio)
    if fmt == "f32le":
        assert np.all(np.isfinite(samples)) and np.max(np.abs(samples)) <= 1.0
    assert np.any(samples != 0), "the model's (noisy) voice, not silence"
    assert texts and all(texts), "the model's words arrive as text messages"
    await kyutai.wait_for_count(DONE, done + 1, STEP_TIMEOUT)
    await gw.wait_sessions(lambda r: not r.sessions)


# -- two callers, one server --------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/ws/stream", "/api/chat"])
async def test_second_caller_is_queued_by_the_gateway_then_served(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer, route: str
) -> None:
    """The real server would park a second socket on its lock in silence; the gateway keeps the
    second caller itself, tells it its position, and opens no second server connection."""
    gw = kyutai_gateway
    accepted = kyutai.count(ACCEPTED)
    first = await MoshiSession.connect(gw.url, via(gw.new_key("first")))
    try:
        second_key = gw.new_key("second")
        if route == "/ws/stream":
            await _second_on_ws_stream(gw, kyutai, first, second_key)
        else:
            await _second_on_api_chat(gw, kyutai, first, second_key)
    finally:
        await first.close()
    assert kyutai.count(ACCEPTED) == accepted + 2
    await gw.wait_sessions(lambda r: not r.sessions)


async def _first_talks_then_leaves(
    gw: KyutaiGateway, kyutai: KyutaiServer, first: MoshiSession, accepted: int
) -> None:
    assert kyutai.count(ACCEPTED) == accepted, "the queued caller never reached the server"
    _check_audio(await exchange(first, noise_frames(5), expect=4), 4)
    async with await gw.admin("GET", "/admin/sessions") as resp:
        listed = await resp.json()
    assert [(s["key_name"], s["state"]) for s in listed["active"]] == [("first", "live")]
    assert [(s["key_name"], s["queue_position"]) for s in listed["queued"]] == [("second", 1)]
    await first.close()


async def _second_on_ws_stream(
    gw: KyutaiGateway, kyutai: KyutaiServer, first: MoshiSession, key: str
) -> None:
    accepted = kyutai.count(ACCEPTED)
    url = gw.ws_url + f"/ws/stream?api_key={key}&voice={VOICE}"
    async with websockets.connect(url, compression=None, proxy=None, open_timeout=10) as ws:
        queued = await _next_json(ws)
        assert (queued["type"], queued["position"]) == ("queue", 1)
        assert queued["eta_s"] >= 0
        await _first_talks_then_leaves(gw, kyutai, first, accepted)
        assert await _next_json(ws) == {"type": "ready"}
        pcm = np.concatenate(noise_frames(5, seed=41))
        await ws.send((pcm * 32767).astype("<i2").tobytes())
        got = 0
        async with asyncio.timeout(STEP_TIMEOUT):
            while got < 4:
                message = await ws.recv()
                if isinstance(message, bytes):
                    assert len(message) == 2 * FRAME_SAMPLES
                    got += 1
        await ws.close()


async def _second_on_api_chat(
    gw: KyutaiGateway, kyutai: KyutaiServer, first: MoshiSession, key: str
) -> None:
    accepted = kyutai.count(ACCEPTED)
    updates: list[Any] = []
    told = asyncio.Event()

    def on_metadata(data: Any) -> None:
        updates.append(data)
        told.set()

    second = asyncio.create_task(
        MoshiSession.connect(gw.url, via(key, pplex_status="1"), on_metadata=on_metadata)
    )
    try:
        await asyncio.wait_for(told.wait(), STEP_TIMEOUT)
        assert (updates[0]["type"], updates[0]["position"]) == ("queue", 1)
        assert not second.done(), "queued: no handshake yet"
        await _first_talks_then_leaves(gw, kyutai, first, accepted)
        async with await asyncio.wait_for(second, STEP_TIMEOUT) as session:
            assert session.handshake == proto.Handshake()
            talk = await exchange(session, noise_frames(5, seed=41), expect=4)
        _check_audio(talk, 4)
        assert [u["state"] for u in updates if u["type"] == "status"] == [
            "connecting",
            "preparing",
        ]
    finally:
        second.cancel()
        with contextlib.suppress(BaseException):
            await (await second).close()


# -- what the gateway adds ------------------------------------------------------------------------


async def test_gateway_added_latency_against_the_real_server(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer, conformance_report: Report
) -> None:
    """The same lock-step client, direct and through the gateway, in alternating short rounds
    so both see the same machine load; the figures go to the tier's summary, never asserted.

    On a loaded CPU a frame can take seconds: the rounds stop once the budget is spent, so a
    slow machine gives fewer figures rather than a timeout."""
    rounds, frames = 6, 16
    budget_s = 45.0
    direct: list[float] = []
    gateway: list[float] = []
    started = time.monotonic()
    completed = 0
    for index in range(rounds):
        if completed and time.monotonic() - started > budget_s:
            break
        batch = noise_frames(frames, seed=50 + index)
        async with await MoshiSession.connect(kyutai.url, OPTIONS) as session:
            direct += await lock_step(session, batch)
        async with await MoshiSession.connect(
            kyutai_gateway.url, via(kyutai_gateway.new_key(f"round{index}"))
        ) as session:
            gateway += await lock_step(session, batch)
        completed += 1
    assert len(direct) == len(gateway) == completed * (frames - 1)
    conformance_report.paired_direct_ms = direct
    conformance_report.paired_gateway_ms = gateway
    conformance_report.paired_load = os.getloadavg()[0]
