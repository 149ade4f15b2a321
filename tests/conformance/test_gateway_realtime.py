"""/v1/realtime in front of the real Kyutai server, driven by the unmodified ``openai`` SDK.

The tiny random weights say nothing sensible, so the checks are about the stream: the real
Ogg/Opus answer arrives as 80 ms PCM16 deltas inside one continuous response, the model's text
pieces as transcript deltas, and closing the SDK's connection ends the server's session.
"""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from openai import AsyncOpenAI

import tests.realtime_sdk  # noqa: F401 (the SDK warmed up before any loop runs)
from pplex_desktop.moshi.codec import FRAME_SAMPLES
from tests.conformance.gateway_support import PERSONA, VOICE, KyutaiGateway
from tests.conformance.kyutai_env import KyutaiServer
from tests.conformance.talk import STEP_TIMEOUT, noise_frames

DONE = "done with connection"


async def test_openai_sdk_through_the_gateway_to_the_real_server(
    kyutai_gateway: KyutaiGateway, kyutai: KyutaiServer
) -> None:
    done = kyutai.count(DONE)
    client = AsyncOpenAI(
        api_key=kyutai_gateway.new_key("sdk"), websocket_base_url=kyutai_gateway.ws_url + "/v1"
    )
    deltas: list[np.ndarray] = []
    words: list[str] = []
    async with client.realtime.connect(
        model="personaplex", extra_query={"response_mode": "continuous"}
    ) as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": PERSONA,
                "audio": {"output": {"voice": VOICE}},
            }
        )

        answered = asyncio.Event()

        async def talk() -> None:
            # Lock step, as the rest of the tier: a CPU model may be far slower than real time.
            for frame in noise_frames(40):
                pcm16 = (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm16).decode())
                await answered.wait()
                answered.clear()

        talker = asyncio.create_task(talk())
        try:
            async with asyncio.timeout(STEP_TIMEOUT * 3):
                async for event in conn:
                    if event.type == "response.output_audio.delta":
                        raw = base64.b64decode(event.delta)
                        deltas.append(np.frombuffer(raw, dtype="<i2"))
                        answered.set()
                    elif event.type == "response.output_audio_transcript.delta":
                        words.append(event.delta)
                    elif event.type == "error":
                        raise AssertionError(f"the gateway sent an error: {event.error}")
                    if len(deltas) >= 8:
                        break
        finally:
            talker.cancel()
    await client.close()
    assert [d.shape[0] for d in deltas] == [FRAME_SAMPLES] * 8
    assert any(np.any(d != 0) for d in deltas), "the model's (random) voice, not silence"
    assert words, "text pieces come through as transcript deltas"
    await kyutai.wait_for_count(DONE, done + 1, STEP_TIMEOUT)
    await kyutai_gateway.wait_sessions(lambda r: not r.sessions)
