"""POST /v1/inference, the original gateway's contract: a file in, the spoken answer out."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
import soundfile as sf

from tests.gateway.conftest import GatewayFactory
from tests.gateway.offline_support import PERSONA, echo_correlation, form, speech_wav, wav_of

SENTENCE = "Hello there. This is a test of the offline inference endpoint."


@pytest.mark.parametrize(("rate", "channels"), [(16_000, 2), (44_100, 1)])
async def test_speech_comes_back_as_24k_mono_with_the_persona_words(
    make_gateway: GatewayFactory, tmp_path: Path, rate: int, channels: int
) -> None:
    gw = await make_gateway()
    source = speech_wav(tmp_path, "speech", rate=rate, channels=channels, text=SENTENCE)
    input_s = sf.info(str(source)).duration
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(source.read_bytes(), "speech.wav", persona=PERSONA, silence_s="2"),
    ) as resp:
        body = await resp.read()
        assert resp.status == 200, body[:300]
        assert resp.headers["Content-Type"] == "audio/wav"
        transcript = unquote(resp.headers["X-Transcript"])
        job_id = resp.headers["X-Job-Id"]
    pcm, out_rate, subtype, out_channels = wav_of(body)
    assert (out_rate, subtype, out_channels) == (24_000, "PCM_16", 1)
    assert len(pcm) == round((input_s + 2.0) * 24_000)
    assert transcript == PERSONA
    corr = echo_correlation(source, pcm)
    assert corr > 0.8
    async with gw.http.get(
        gw.url + f"/v1/jobs/{job_id}/transcript", headers={"X-API-Key": gw.new_key("other")}
    ) as resp:
        assert resp.status == 404
