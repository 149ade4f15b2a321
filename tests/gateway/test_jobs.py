"""The /v1/jobs API: submit, follow, download, list, cancel, delete, expire; keys stay apart."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp import web

from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.sim.sim import SimConfig
from tests.gateway.conftest import Gateway, GatewayFactory
from tests.gateway.offline_support import (
    PERSONA,
    JobEvents,
    finished,
    submit,
    tone_wav,
    wav_of,
)


def _jobs_folder(gw: Gateway) -> Path:
    return Path(gw.ctx.keystore.db.path).parent / "jobs"


async def test_a_job_runs_to_done_and_its_results_download(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    events = JobEvents(gw.ctx.events)
    made = gw.store.create("batch")
    key = made.key
    job = await submit(gw, key, tone_wav(2.0), persona=PERSONA, silence_s="1.5", voice="NATM1")
    assert job["state"] in ("queued", "running")
    assert (job["input_name"], job["voice"], job["input_s"]) == ("tone.wav", "NATM1", 2.0)
    body = await finished(gw, key, job["id"])
    assert body["state"] == "done", body
    assert body["progress"] == 1.0
    assert body["duration_s"] == 3.5
    assert body["transcript"] == PERSONA
    assert body["started_at"] is not None
    assert body["finished_at"] is not None
    progress = [e.progress for e in events.seen if e.job_id == job["id"] and e.state == "running"]
    assert any(0 < p < 1 for p in progress), progress
    assert progress == sorted(progress)
    events.close()

    headers = {"X-API-Key": key}
    async with gw.http.get(body["audio_url"], headers=headers) as resp:
        assert resp.status == 200
        pcm, rate, subtype, channels = wav_of(await resp.read())
    assert (len(pcm), rate, subtype, channels) == (84_000, 24_000, "PCM_16", 1)
    async with gw.http.get(body["transcript_url"], headers=headers) as resp:
        transcript = await resp.json()
    assert transcript["text"] == PERSONA
    # pplex-sim sends a word after the audio of every third frame, so the words are stamped at
    # output frames 3, 6, 9... (80 ms each; the real servers send a word before its frame).
    assert [p["text"] for p in transcript["pieces"]] == [" " + w for w in PERSONA.split()]
    assert [p["start_s"] for p in transcript["pieces"]] == [0.24, 0.48, 0.72, 0.96, 1.2]

    gw.store.flush_usage()
    record = gw.store.get(made.record.id)
    assert record.audio_in_s == pytest.approx(2.0)
    assert record.audio_out_s == pytest.approx(3.5)
    assert gw.sims[0].stats.queries[-1] == {"text_prompt": PERSONA, "voice_prompt": "NATM1.pt"}


async def test_keys_only_ever_see_their_own_jobs(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    mine, theirs = gw.new_key("mine"), gw.new_key("theirs")
    ids = [(await submit(gw, mine, tone_wav(0.5), silence_s="0"))["id"] for _ in range(3)]
    for job_id in ids:
        await finished(gw, mine, job_id)
    async with gw.http.get(
        gw.url + "/v1/jobs", params={"limit": "2"}, headers={"X-API-Key": mine}
    ) as resp:
        page = await resp.json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["total"] == 3
    async with gw.http.get(page["next"], headers={"X-API-Key": mine}) as resp:
        rest = await resp.json()
    assert [j["id"] for j in rest["jobs"]] == ids[:1]
    assert rest["next"] is None

    other = {"X-API-Key": theirs}
    async with gw.http.get(gw.url + "/v1/jobs", headers=other) as resp:
        assert (await resp.json())["jobs"] == []
    for method, suffix in [("GET", ""), ("GET", "/audio"), ("GET", "/transcript"), ("DELETE", "")]:
        async with gw.http.request(
            method, gw.url + f"/v1/jobs/{ids[0]}{suffix}", headers=other
        ) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "no_job"
    async with gw.http.get(gw.url + "/v1/jobs/job_" + "0" * 20, headers=other) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "no_job"
    async with gw.http.get(gw.url + "/v1/jobs/../../etc", headers=other) as resp:
        assert resp.status == 404


async def test_queued_and_waiting_jobs_can_be_cancelled(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    key = gw.new_key("batch")
    headers = {"X-API-Key": key}
    events = JobEvents(gw.ctx.events)
    holder = await MoshiSession.connect(
        gw.url, SessionOptions(api_key=gw.new_key("live"), handshake_timeout=10)
    )
    first = await submit(gw, key, tone_wav(1.0))
    second = await submit(gw, key, tone_wav(1.0))
    await events.wait_for(lambda e: e.job_id == first["id"] and e.state == "running")
    async with gw.http.get(first["url"], headers=headers) as resp:
        body = await resp.json()
    assert (body["state"], body["stage"]) == ("running", "waiting")
    assert len(gw.ctx.scheduler.waiting()) == 1
    async with gw.http.get(second["url"], headers=headers) as resp:
        assert (await resp.json())["state"] == "queued"

    for job in (second, first):
        async with gw.http.delete(job["url"], headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 200
        assert (body["state"], body["error"]) == ("cancelled", "The job was cancelled.")
        assert not (_jobs_folder(gw) / job["id"]).exists()
    assert gw.ctx.scheduler.waiting() == []
    await holder.close()
    await gw.sessions_done()
    assert gw.sims[0].stats.sessions_started == 1  # the live session only
    async with gw.http.get(first["audio_url"] or first["url"] + "/audio", headers=headers) as resp:
        assert resp.status == 409
        assert "cancelled" in (await resp.json())["error"]["message"]
    events.close()


async def test_deleting_a_finished_job_removes_its_files(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    key = gw.new_key()
    headers = {"X-API-Key": key}
    job = await submit(gw, key, tone_wav(0.5), silence_s="0")
    await finished(gw, key, job["id"])
    folder = _jobs_folder(gw) / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["response.wav", "transcript.json"]
    async with gw.http.delete(job["url"], headers=headers) as resp:
        assert await resp.json() == {"id": job["id"], "deleted": True}
    assert not folder.exists()
    async with gw.http.get(job["url"], headers=headers) as resp:
        assert resp.status == 404


async def test_finished_jobs_expire_after_the_retention(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(job_retention_h=0.001)  # 3.6 s of the gateway's (fake) clock
    key = gw.new_key()
    events = JobEvents(gw.ctx.events)
    old = await submit(gw, key, tone_wav(0.5), silence_s="0")
    await finished(gw, key, old["id"])
    gw.clock.advance(10)
    new = await submit(gw, key, tone_wav(0.5), silence_s="0")
    await finished(gw, key, new["id"])
    expired = await events.wait_for(lambda e: old["id"] in getattr(e, "job_ids", ()))
    assert new["id"] not in expired.job_ids
    async with gw.http.get(old["url"], headers={"X-API-Key": key}) as resp:
        assert resp.status == 404
    assert not (_jobs_folder(gw) / old["id"]).exists()
    async with gw.http.get(new["url"], headers={"X-API-Key": key}) as resp:
        assert (await resp.json())["state"] == "done"
    events.close()


async def test_a_failing_backend_fails_the_job_with_a_sentence(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(sim_config=SimConfig(close_after_frames=10))
    key = gw.new_key()
    job = await submit(gw, key, tone_wav(2.0), silence_s="0")
    body = await finished(gw, key, job["id"])
    assert body["state"] == "failed"
    assert body["error_code"] == "backend_failed"
    assert re.fullmatch(
        r"The model server (ended the conversation|dropped the connection) after 0\.\d s of "
        r"the 2\.0 s answer.*\.",
        body["error"],
    ), body["error"]
    assert gw.ctx.backends.backends[0].healthy is False
    assert not gw.ctx.backends.backends[0].busy


async def test_a_job_cancelled_while_connecting_frees_its_model_server(
    make_gateway: GatewayFactory,
) -> None:
    """A DELETE that lands while the job is connecting must hand the model server back."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def upgrade_never_answered(_request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_get("/api/chat", upgrade_never_answered)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        gw = await make_gateway(sims=0, backends=(BackendConfig(f"ws://127.0.0.1:{port}"),))
        key = gw.new_key("batch")
        job = await submit(gw, key, tone_wav(0.5))
        await asyncio.wait_for(entered.wait(), 10)
        async with gw.http.delete(job["url"], headers={"X-API-Key": key}) as resp:
            assert (await resp.json())["state"] == "cancelled"
        assert [b.busy for b in gw.ctx.backends.backends] == [False]
    finally:
        release.set()
        await runner.cleanup()
