"""POST /v1/inference, the original gateway's contract: a file in, the spoken answer out."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import unquote

import pytest
import soundfile as sf

from pplex_desktop.gateway.pool.scheduler import Priority
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.sim.sim import SimConfig
from tests.gateway.conftest import GatewayFactory
from tests.gateway.offline_support import (
    PERSONA,
    JobEvents,
    echo_correlation,
    error_of,
    finished,
    form,
    speech_wav,
    submit,
    tone_wav,
    wav_of,
)

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


async def test_json_format_and_a_non_ascii_transcript(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    key = gw.new_key()
    persona = "Café crème: 100% sûr ✓ naïve"
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": key},
        data=form(tone_wav(2.0), text_prompt=persona, silence_s="0.5"),
    ) as resp:
        assert resp.status == 200
        header = resp.headers["X-Transcript"]
    assert header.isascii()
    assert "Caf%C3%A9 cr%C3%A8me: 100%25 s%C3%BBr %E2%9C%93" in header
    assert unquote(header) == persona
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": key},
        data=form(tone_wav(2.0), persona=persona, format="json"),
    ) as resp:
        body = await resp.json()
    assert body["transcript"] == persona
    assert (body["input_s"], body["duration_s"]) == (2.0, 5.0)
    async with gw.http.get(body["audio_url"], headers={"X-API-Key": key}) as resp:
        pcm, *_ = wav_of(await resp.read())
    assert len(pcm) == 5 * 24_000


async def test_a_backend_failure_is_a_502_with_a_sentence(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sim_config=SimConfig(error_after_frames=5))
    async with gw.http.post(
        gw.url + "/v1/inference", headers={"X-API-Key": gw.new_key()}, data=form(tone_wav(1.0))
    ) as resp:
        error = await error_of(resp)
        assert resp.status == 502
    assert error == {
        "code": "model_error",
        "message": "The model server reported an error: simulated model failure",
    }
    assert not gw.ctx.backends.backends[0].busy


async def test_a_client_that_hangs_up_cancels_its_job(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(sim_config=SimConfig(frame_delay_s=0.02))
    events = JobEvents(gw.ctx.events)
    request = asyncio.create_task(
        gw.http.post(
            gw.url + "/v1/inference",
            headers={"X-API-Key": gw.new_key()},
            data=form(tone_wav(30.0)),
        )
    )
    started = await events.wait_for(lambda e: e.state == "running" and e.progress > 0)
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    await events.wait_for(lambda e: e.job_id == started.job_id and e.state == "cancelled")
    await gw.sims[0].wait_until(lambda s: s.sessions_finished == 1)
    assert gw.sims[0].stats.frames_out < 30 / 0.08
    assert not gw.ctx.backends.backends[0].busy
    events.close()


async def test_live_sessions_go_before_jobs(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    key = gw.new_key("batch")
    events = JobEvents(gw.ctx.events)
    first = await MoshiSession.connect(
        gw.url, SessionOptions(api_key=gw.new_key("a"), handshake_timeout=10)
    )
    job = await submit(gw, key, tone_wav(1.0))
    await events.wait_for(lambda e: e.job_id == job["id"] and e.state == "running")
    second = asyncio.create_task(
        MoshiSession.connect(gw.url, SessionOptions(api_key=gw.new_key("b"), handshake_timeout=10))
    )
    await gw.wait_sessions(lambda _r: len(gw.ctx.scheduler.waiting()) == 2)
    assert [t.priority for t in gw.ctx.scheduler.waiting()] == [Priority.LIVE, Priority.OFFLINE]
    await first.close()
    session = await asyncio.wait_for(second, 10)
    async with gw.http.get(job["url"], headers={"X-API-Key": key}) as resp:
        assert (await resp.json())["stage"] == "waiting"
    assert gw.sims[0].stats.sessions_started == 2
    await session.close()
    assert (await finished(gw, key, job["id"]))["state"] == "done"
    assert gw.sims[0].stats.sessions_started == 3
    events.close()


async def test_a_server_that_drops_the_first_frame_still_fills_the_answer(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(sim_config=SimConfig(flavor="kyutai"))
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers={"X-API-Key": gw.new_key()},
        data=form(tone_wav(2.0), silence_s="1"),
    ) as resp:
        assert resp.status == 200
        transcript = unquote(resp.headers["X-Transcript"])
        pcm, *_ = wav_of(await resp.read())
    assert len(pcm) == 3 * 24_000
    assert transcript == "Hello, this is the simulated Moshi speaking."
    stats = gw.sims[0].stats
    assert stats.frames_out == stats.frames_in - 1 >= 3 / 0.08


async def test_a_stopping_gateway_tells_waiting_callers_and_keeps_the_job(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(sim_config=SimConfig(frame_delay_s=0.02))
    events = JobEvents(gw.ctx.events)
    request = asyncio.create_task(
        gw.http.post(
            gw.url + "/v1/inference",
            headers={"X-API-Key": gw.new_key()},
            data=form(tone_wav(30.0)),
        )
    )
    started = await events.wait_for(lambda e: e.state == "running" and e.progress > 0)
    jobs_db = gw.ctx.keystore.db.path.parent / "jobs.sqlite3"
    await gw.runner.stop()
    async with await request as resp:
        error = await error_of(resp)
        assert resp.status == 503
    assert error["code"] == "shutting_down"
    with sqlite3.connect(jobs_db) as conn:
        row = conn.execute("SELECT state, attempts FROM jobs WHERE id = ?", (started.job_id,))
        assert row.fetchone() == ("queued", 0)
    events.close()
