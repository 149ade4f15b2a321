"""Hostile uploads: every one is a 4xx with a sentence, none is a 5xx, and the gateway goes on."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.gateway.conftest import Gateway, GatewayFactory
from tests.gateway.hostile import rejected, tolerated, wav_bytes
from tests.gateway.offline_support import error_of, form, wav_of


@pytest.fixture
async def strict_gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(max_audio_s=5.0, max_upload_mb=16.0)


def _headers(gw: Gateway) -> dict[str, str]:
    return {"X-API-Key": gw.new_key("hostile", rpm=10_000)}


async def _still_serving(gw: Gateway, headers: dict[str, str]) -> None:
    async with gw.http.post(
        gw.url + "/v1/inference",
        headers=headers,
        data=form(wav_bytes(data=b"\1\0" * 4800), "ok.wav", silence_s="0"),
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_malformed_files_are_refused_with_sentences(strict_gateway: Gateway) -> None:
    gw = strict_gateway
    headers = _headers(gw)
    corpus = rejected()
    assert len(corpus) >= 15
    seen: list[tuple[str, int]] = []
    for name, data, status, words in corpus:
        async with gw.http.post(
            gw.url + "/v1/inference", headers=headers, data=form(data, name)
        ) as resp:
            error = await error_of(resp)
            seen.append((name, resp.status))
            assert resp.status == status, (name, error)
            assert words in error["message"], (name, error)
            assert error["message"].endswith("."), (name, error)
    assert all(400 <= status < 500 for _name, status in seen)
    await _still_serving(gw, headers)
    # Refused uploads leave nothing behind: only the one accepted job has a row and a folder.
    async with gw.http.get(gw.url + "/v1/jobs", headers=headers) as resp:
        listed = {j["id"] for j in (await resp.json())["jobs"]}
    folders = {p.name for p in (gw.ctx.keystore.db.path.parent / "jobs").iterdir()}
    assert len(listed) == 1
    assert folders == listed


async def test_odd_but_honest_files_count_their_real_frames(strict_gateway: Gateway) -> None:
    gw = strict_gateway
    headers = _headers(gw)
    for name, data, seconds in tolerated():
        async with gw.http.post(
            gw.url + "/v1/inference", headers=headers, data=form(data, name, silence_s="1")
        ) as resp:
            assert resp.status == 200, (name, await resp.text())
            pcm, rate, _subtype, _channels = wav_of(await resp.read())
        assert rate == 24_000
        assert len(pcm) == round((seconds + 1.0) * 24_000), name


async def test_broken_requests_are_refused_with_sentences(strict_gateway: Gateway) -> None:
    gw = strict_gateway
    headers = _headers(gw)
    url = gw.url + "/v1/inference"
    ok = wav_bytes()

    async def check(resp: aiohttp.ClientResponse, status: int, words: str) -> None:
        error = await error_of(resp)
        assert resp.status == status, error
        assert words in error["message"], error

    async with gw.http.post(url, headers=headers, data=form(None, persona="hi")) as resp:
        await check(resp, 400, "has no 'audio' file")
    async with gw.http.post(url, headers=headers, json={"audio": "base64?"}) as resp:
        await check(resp, 415, "multipart/form-data")
    async with gw.http.post(url, headers=headers, data=ok) as resp:
        await check(resp, 415, "multipart/form-data")
    junk_form = {**headers, "Content-Type": "multipart/form-data; boundary=xyz"}
    async with gw.http.post(url, headers=junk_form, data=b"\x00garbage" * 1000) as resp:
        await check(resp, 400, "multipart form cannot be read")
    no_boundary = {**headers, "Content-Type": "multipart/form-data"}
    async with gw.http.post(url, headers=no_boundary, data=b"--x\r\n") as resp:
        await check(resp, 400, "multipart form cannot be read")
    twice = form(ok)
    twice.add_field("audio", io.BytesIO(ok), filename="again.wav")
    async with gw.http.post(url, headers=headers, data=twice) as resp:
        await check(resp, 400, "exactly one 'audio' file")
    async with gw.http.post(url, headers=headers, data=form(ok, model="big")) as resp:
        await check(resp, 400, "'model' is not known")
    for field, value, words in [
        ("seed", "abc", "whole number"),
        ("silence_s", "1000", "between 0 and 30"),
        ("silence_s", "nan", "between 0 and 30"),
        ("voice", "../../etc/passwd", "not a voice name"),
        ("voice", "NOPE9", "not available"),
        ("format", "mp3", "format must be one of"),
        ("engine", "local", "not configured"),
        ("persona", "x" * 2001, "limit is 2000"),
    ]:
        async with gw.http.post(url, headers=headers, data=form(ok, **{field: value})) as resp:
            await check(resp, 400, words)
    await _still_serving(gw, headers)


async def test_bodies_over_the_size_limit_are_413(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(max_upload_mb=1.0)
    headers = _headers(gw)
    big = wav_bytes(data=b"\0" * 3 * 1024 * 1024)
    async with gw.http.post(gw.url + "/v1/inference", headers=headers, data=form(big)) as resp:
        error = await error_of(resp)
        assert resp.status == 413
        assert "larger than this gateway accepts (1 MB)" in error["message"]

    async def chunked() -> AsyncIterator[bytes]:
        # No Content-Length: the limit must hold while the body streams in.
        yield b"--b\r\nContent-Disposition: form-data; name=audio; filename=a.wav\r\n\r\n"
        for _ in range(48):
            yield b"\0" * 65_536

    streamed = {**headers, "Content-Type": "multipart/form-data; boundary=b"}
    async with gw.http.post(gw.url + "/v1/inference", headers=streamed, data=chunked()) as resp:
        assert resp.status == 413
        assert "larger than this gateway accepts" in (await error_of(resp))["message"]
    await _still_serving(gw, headers)
