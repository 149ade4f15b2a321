"""/v1/realtime through the unmodified ``openai`` SDK, in front of a real pplex-sim."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest
from openai import AsyncOpenAI

import tests.realtime_sdk  # noqa: F401 (the SDK warmed up before any loop runs)
from pplex_desktop.moshi import g711
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.signals import dominant_frequency, tone

PERSONA = "You are a patient teacher."


def b64_pcm16(pcm: np.ndarray) -> str:
    return base64.b64encode((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()).decode()


def pcm16_of(delta: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(delta), dtype="<i2").astype(np.float32) / 32768.0


@asynccontextmanager
async def realtime(gateway: Gateway, key: str, **query: str) -> AsyncIterator[Any]:
    client = AsyncOpenAI(api_key=key, websocket_base_url=gateway.ws_url + "/v1")
    async with client.realtime.connect(model="personaplex-7b", extra_query=query) as conn:
        yield conn
    await client.close()


async def send_paced(conn: Any, pcm: np.ndarray, chunk_s: float = 0.1) -> None:
    """Append audio in chunks, no faster than real time plus a little."""
    loop = asyncio.get_running_loop()
    step = int(24_000 * chunk_s)
    start = loop.time()
    for i in range(0, len(pcm), step):
        await asyncio.sleep(max(0.0, start + i / 24_000 - 0.3 - loop.time()))
        await conn.input_audio_buffer.append(audio=b64_pcm16(pcm[i : i + step]))


async def events_until(conn: Any, kind: str, limit_s: float = 15.0) -> list[Any]:
    seen: list[Any] = []
    async with asyncio.timeout(limit_s):
        async for ev in conn:
            seen.append(ev)
            if ev.type == kind:
                return seen
    raise AssertionError(f"the connection closed before {kind}: {[e.type for e in seen]}")


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def test_sdk_holds_a_conversation_in_turns(gateway: Gateway) -> None:
    made = gateway.store.create("agent")
    key = made.key
    async with realtime(gateway, key) as conn:
        created = await events_until(conn, "session.created")
        assert created[-1].session.model == "personaplex-7b"
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": PERSONA,
                "audio": {"output": {"voice": "NATM1"}},
            }
        )
        updated = await events_until(conn, "session.updated")
        assert updated[-1].session.instructions == PERSONA
        assert updated[-1].session.audio.output.voice == "NATM1"
        sender = asyncio.create_task(send_paced(conn, np.concatenate([tone(440, 1.5)])))
        seen = await events_until(conn, "response.done")
        await sender
    kinds = [e.type for e in seen]
    assert kinds.index("response.created") < kinds.index("response.output_audio.delta")
    audio = np.concatenate(
        [pcm16_of(e.delta) for e in of_type(seen, "response.output_audio.delta")]
    )
    assert dominant_frequency(audio) == pytest.approx(440, abs=5)
    words = "".join(e.delta for e in of_type(seen, "response.output_audio_transcript.delta"))
    assert words.strip()
    done = of_type(seen, "response.done")[0].response
    assert done.status == "completed"
    usage = done.usage.model_dump()
    assert usage["output_audio_seconds"] > 1.0
    assert usage["input_audio_seconds"] > 1.0
    assert gateway.sims[0].stats.queries[-1]["text_prompt"] == PERSONA
    assert gateway.sims[0].stats.queries[-1]["voice_prompt"] == "NATM1.pt"
    await gateway.sessions_done()
    gateway.store.flush_usage()
    record = gateway.store.get(made.record.id)
    assert record.audio_in_s == pytest.approx(usage["input_audio_seconds"], abs=0.01)
    assert record.audio_out_s > 1.0


async def test_continuous_mode_keeps_one_response_for_the_call(gateway: Gateway) -> None:
    key = gateway.new_key()
    async with realtime(gateway, key, response_mode="continuous") as conn:
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(300, 0.5)))
        seen = await events_until(conn, "response.created")
        deltas = 0
        async with asyncio.timeout(15):
            async for ev in conn:
                seen.append(ev)
                deltas += ev.type == "response.output_audio.delta"
                if deltas >= 20:  # 1.6 s of the call, silence included
                    break
    assert not of_type(seen, "response.done")
    assert of_type(seen, "response.output_audio_transcript.delta")


async def test_g711_in_and_out(gateway: Gateway) -> None:
    key = gateway.new_key()
    narrow = (tone(1000, 1.2, rate=8_000) * 32767).astype(np.int16)
    async with realtime(gateway, key) as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {"format": {"type": "audio/pcmu"}},
                    "output": {"format": {"type": "audio/pcma"}},
                },
            }
        )
        await events_until(conn, "session.updated")
        for i in range(0, len(narrow), 800):
            await conn.input_audio_buffer.append(
                audio=base64.b64encode(g711.encode("pcmu", narrow[i : i + 800])).decode()
            )
            await asyncio.sleep(0.05)
        seen = await events_until(conn, "response.done")
    coded = b"".join(
        base64.b64decode(e.delta) for e in of_type(seen, "response.output_audio.delta")
    )
    heard = g711.decode("pcma", coded).astype(np.float32) / 32768.0
    assert dominant_frequency(heard, rate=8_000) == pytest.approx(1000, abs=10)


async def test_persona_change_once_live_is_refused_and_the_call_goes_on(gateway: Gateway) -> None:
    key = gateway.new_key()
    async with realtime(gateway, key, response_mode="continuous") as conn:
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.2)))
        await events_until(conn, "response.created")
        await conn.session.update(session={"type": "realtime", "instructions": "Be a pirate."})
        seen = await events_until(conn, "error")
        error = of_type(seen, "error")[0].error
        assert error.code == "session_locked"
        assert "Reconnect" in error.message
        await send_paced(conn, tone(440, 0.5))
        await events_until(conn, "response.output_audio.delta")


async def test_bad_events_get_error_events_and_the_session_survives(gateway: Gateway) -> None:
    key = gateway.new_key()
    url = gateway.ws_url + "/v1/realtime"
    async with gateway.http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws:
        assert json.loads((await ws.receive()).data)["type"] == "session.created"
        assert json.loads((await ws.receive()).data)["type"] == "rate_limits.updated"
        replies: list[dict[str, Any]] = []
        for bad in (
            "{not json",
            json.dumps([1, 2]),
            json.dumps({"type": "no.such.event", "event_id": "evt_1"}),
            json.dumps({"type": "input_audio_buffer.append", "audio": "***"}),
            json.dumps(
                {"type": "session.update", "session": {"audio": {"output": {"voice": "X"}}}}
            ),
            json.dumps({"type": "session.update", "session": {"pplex": {"silence_ms": 1e308}}}),
            json.dumps({"type": "conversation.item.create", "item": {}}),
        ):
            await ws.send_str(bad)
            replies.append(json.loads((await asyncio.wait_for(ws.receive(), 5)).data))
        await ws.send_bytes(b"\x00\x01")
        replies.append(json.loads((await asyncio.wait_for(ws.receive(), 5)).data))
        codes = [r["error"]["code"] for r in replies]
        assert all(r["type"] == "error" for r in replies)
        assert codes == [
            "invalid_json",
            "invalid_event",
            "unknown_event",
            "invalid_value",
            "unknown_voice",
            "invalid_value",
            "unsupported_event",
            "binary_not_supported",
        ]
        assert replies[2]["error"]["event_id"] == "evt_1"
        # Still a working session: a good update is answered.
        await ws.send_str(json.dumps({"type": "session.update", "session": {"instructions": "Hi"}}))
        assert json.loads((await ws.receive()).data)["type"] == "session.updated"


async def test_key_in_the_browser_subprotocol(gateway: Gateway) -> None:
    key = gateway.new_key()
    url = gateway.ws_url + "/v1/realtime"
    async with gateway.http.ws_connect(
        url, protocols=("realtime", f"openai-insecure-api-key.{key}")
    ) as ws:
        assert ws.protocol == "realtime"
        assert json.loads((await ws.receive()).data)["type"] == "session.created"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.http.ws_connect(url)
    assert refused.value.status == 401


async def test_a_queued_caller_is_told_its_place(gateway: Gateway) -> None:
    first, second = gateway.new_key("first"), gateway.new_key("second")
    async with realtime(gateway, first, response_mode="continuous") as conn_a:
        await conn_a.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.2)))
        await events_until(conn_a, "response.created")
        async with realtime(gateway, second) as conn_b:
            await conn_b.session.update(
                session={"type": "realtime", "pplex": {"queue_events": True}}
            )
            await events_until(conn_b, "session.updated")
            await conn_b.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.2)))
            seen = await events_until(conn_b, "pplex.queue.updated")
            # The SDK hands over our own event types untouched.
            assert seen[-1].model_dump()["position"] == 1


async def test_a_revoked_key_is_cut_off_with_an_error_event(gateway: Gateway) -> None:
    made = gateway.store.create("doomed")
    async with realtime(gateway, made.key, response_mode="continuous") as conn:
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.2)))
        await events_until(conn, "response.created")
        gateway.store.revoke(made.record.id)
        seen = await events_until(conn, "error")
    error = of_type(seen, "error")[0].error
    assert "revoked" in error.message


async def test_silence_keeps_the_models_clock(gateway: Gateway) -> None:
    key = gateway.new_key()
    async with realtime(gateway, key, response_mode="continuous") as conn:
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.2)))
        await events_until(conn, "response.created")
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.4)))
        loop = asyncio.get_running_loop()
        start, frames = loop.time(), gateway.sims[0].stats.frames_in
        deltas = 0
        async with asyncio.timeout(15):
            async for ev in conn:
                deltas += ev.type == "response.output_audio.delta"
                if deltas >= 25:
                    break
        elapsed = loop.time() - start
        sent = gateway.sims[0].stats.frames_in - frames
    # Only 0.4 s (5 frames) came from the client; the gateway kept the model's 12.5 Hz.
    assert elapsed > 1.5
    assert sent >= 12.5 * elapsed - 6


async def test_audio_faster_than_real_time_ends_with_an_error_event(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(realtime_tolerance_s=1.0)
    key = gateway.new_key()
    async with realtime(gateway, key, response_mode="continuous") as conn:
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(440, 0.2)))
        await events_until(conn, "response.created")
        await conn.input_audio_buffer.append(audio=b64_pcm16(tone(440, 4.0)))
        seen = await events_until(conn, "error")
    assert of_type(seen, "error")[0].error.code == "too_fast"
