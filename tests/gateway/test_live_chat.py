"""/api/chat through the gateway: the native protocol, byte for byte, against pplex-sim."""

from __future__ import annotations

import asyncio
from typing import Literal

import numpy as np
import pytest

from pplex_desktop.moshi.client import (
    ConnectError,
    MoshiSession,
    SessionOptions,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from pplex_desktop.sim.sim import SimConfig
from tests import talk
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.signals import dominant_frequency, tone

PERSONA = "You are a patient librarian who whispers."


def options(key: str, **kwargs: object) -> SessionOptions:
    base: dict[str, object] = {
        "text_prompt": PERSONA,
        "voice_prompt": "NATM2",
        "api_key": key,
        "handshake_timeout": 10,
    }
    base.update(kwargs)
    return SessionOptions(**base)  # type: ignore[arg-type]


async def converse(
    session: MoshiSession, pcm: np.ndarray, frames_out: int
) -> tuple[np.ndarray, str]:
    # Paced like a microphone: the gateway refuses audio faster than real time.
    audio, texts = await talk.converse(session, pcm, expected_frames=frames_out, lead_s=0.5)
    return audio, "".join(texts)


@pytest.mark.parametrize("flavor", ["personaplex", "kyutai"])
async def test_audio_and_persona_through_the_gateway(
    make_gateway: GatewayFactory, flavor: Literal["kyutai", "personaplex"]
) -> None:
    gw = await make_gateway(sim_config=SimConfig(flavor=flavor, echo_delay_frames=1))
    key = gw.new_key()
    sent = 25
    expected = sent - 1 if flavor == "kyutai" else sent
    async with await MoshiSession.connect(gw.url, options(key)) as session:
        y, text = await converse(session, tone(440, sent * 0.08), expected)
    assert len(y) == expected * FRAME_SAMPLES
    assert dominant_frequency(y[2 * FRAME_SAMPLES :]) == pytest.approx(440, abs=3)
    if flavor == "personaplex":
        assert text == " " + PERSONA
        assert gw.sims[0].stats.queries[-1] == {"text_prompt": PERSONA, "voice_prompt": "NATM2.pt"}
    await gw.sims[0].wait_until(lambda s: s.sessions_finished == 1)


async def test_bytes_are_relayed_unchanged(gateway: Gateway) -> None:
    """What the backend sends is what the client gets: compare against a direct connection."""
    import websockets

    key = gateway.new_key()
    query = "?text_prompt=Hi&voice_prompt=NATF1"

    async def collect(url: str) -> list[bytes]:
        received: list[bytes] = []
        async with websockets.connect(url, compression=None, proxy=None) as ws:
            received.append(await ws.recv(decode=False))  # handshake
            from pplex_desktop.moshi import protocol as proto
            from pplex_desktop.moshi.codec import OpusEncoder

            enc = OpusEncoder()
            for _ in range(6):
                await ws.send(
                    proto.encode(proto.Audio(enc.encode(np.zeros(FRAME_SAMPLES, np.float32))))
                )
            while len(received) < 9:
                received.append(await asyncio.wait_for(ws.recv(decode=False), 5))
        return received

    direct = await collect(
        (gateway.sims[0].url or "").replace("http", "ws") + "/api/chat" + query + ".pt"
    )
    through = await collect(gateway.ws_url + "/api/chat" + query + f"&api_key={key}")
    assert [m[:1] for m in through] == [m[:1] for m in direct]
    assert through[0] == direct[0] == b"\x00"
    assert [len(m) for m in through[1:3]] == [len(m) for m in direct[1:3]], "Ogg header pages"


async def test_seed_is_accepted_but_never_forwarded(gateway: Gateway) -> None:
    key = gateway.new_key()
    async with await MoshiSession.connect(gateway.url, options(key, seed=42)):
        pass
    assert "seed" not in gateway.sims[0].stats.queries[-1]
    assert gateway.sims[0].stats.refused == 0


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"voice_prompt": "../x"}, "invalid_voice"),
        ({"voice_prompt": "NOPE9"}, "unknown_voice"),
        ({"text_prompt": "x" * 3000}, "prompt_too_long"),
        ({"seed": "lucky"}, "invalid_seed"),
    ],
)
async def test_bad_parameters_are_refused_before_the_upgrade(
    gateway: Gateway, query: dict[str, str], code: str
) -> None:
    key = gateway.new_key()
    async with gateway.http.get(
        gateway.url + "/api/chat", params={**query, "api_key": key}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == code
    assert gateway.sims[0].stats.queries == [], "nothing reached the model server"


async def test_plain_http_gets_426(gateway: Gateway) -> None:
    async with gateway.http.get(
        gateway.url + "/api/chat", headers={"X-API-Key": gateway.new_key()}
    ) as resp:
        assert resp.status == 426
        assert (await resp.json())["error"]["code"] == "websocket_required"


async def test_refused_upgrade_is_a_sentence_for_our_client(gateway: Gateway) -> None:
    with pytest.raises(ConnectError, match="HTTP 401: The API key is not known"):
        from pplex_desktop.core import keys

        await MoshiSession.connect(gateway.url, options(keys.new_key()))


async def test_upgrades_count_against_the_rate_limit(gateway: Gateway) -> None:
    key = gateway.new_key(rpm=1, max_sessions=5)
    async with await MoshiSession.connect(gateway.url, options(key)):
        pass
    with pytest.raises(ConnectError, match="HTTP 429"):
        await MoshiSession.connect(gateway.url, options(key))


async def test_concurrent_session_limit_per_key(gateway: Gateway) -> None:
    key = gateway.new_key(max_sessions=1)
    async with await MoshiSession.connect(gateway.url, options(key)):
        with pytest.raises(
            ConnectError, match="HTTP 429: The key 'test' already has 1 live session"
        ):
            await MoshiSession.connect(gateway.url, options(key))


async def test_defaults_fill_in_a_missing_persona_and_voice(gateway: Gateway) -> None:
    key = gateway.new_key()
    bare = SessionOptions(api_key=key, handshake_timeout=10)
    async with await MoshiSession.connect(gateway.url, bare):
        pass
    query = gateway.sims[0].stats.queries[-1]
    assert query["voice_prompt"] == "NATF2.pt"
    assert query["text_prompt"].startswith("You are a wise and friendly teacher")


async def test_usage_is_charged_in_audio_seconds(gateway: Gateway) -> None:
    made = gateway.store.create("talker")
    async with await MoshiSession.connect(gateway.url, options(made.key)) as session:
        await converse(session, tone(300, 0.8), 10)
    await gateway.sessions_done()
    gateway.store.flush_usage()
    record = gateway.store.get(made.record.id)
    assert record.audio_in_s == pytest.approx(0.8, abs=0.09)
    assert record.audio_out_s == pytest.approx(0.8, abs=0.09)
