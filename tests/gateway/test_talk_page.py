"""The talk page's files, the CA download and /v1/stream/check, over a real port."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from pplex_desktop.core.personas import PRESETS
from pplex_desktop.gateway.api import talk
from pplex_desktop.gateway.api.talk import ASSETS, WEB_FILES
from pplex_desktop.sim.sim import SimConfig
from tests.gateway.conftest import Gateway, GatewayFactory


async def test_page_and_assets_are_public_with_types_and_a_strict_policy(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert resp.charset == "utf-8"
        html = await resp.text()
        policy = resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "microphone=(self)" in resp.headers["Permissions-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    host = gateway.url.split("://", 1)[1]
    assert directives["connect-src"] == f"'self' ws://{host}"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["media-src"] == "'none'"  # the voice is a MediaStream, never a URL
    assert "unsafe" not in policy
    # Nothing inline and nothing from elsewhere: the policy above would block it anyway.
    assert "<script>" not in html and "style=" not in html and "://" not in html
    for name, content_type in ASSETS.items():
        assert f"/web/{name}" in html or name.endswith("worklet.js")
        async with gateway.http.get(f"{gateway.url}/web/{name}") as resp:
            assert resp.status == 200, name
            assert resp.content_type == content_type
            assert resp.headers["Content-Security-Policy"] == policy
            assert len(await resp.read()) > 100


async def test_unknown_and_traversing_file_names_are_not_served(gateway: Gateway) -> None:
    for path in ("/web/nope.js", "/web/..%2F..%2Fgateway%2Fapp.py", "/web/index.html/x"):
        async with gateway.http.get(gateway.url + path) as resp:
            assert resp.status == 404, path
            assert (await resp.json())["error"]["code"] == "not_found"


async def test_personas_come_from_the_presets(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/web/personas.json") as resp:
        body = await resp.json()
    assert [p["title"] for p in body["presets"]] == [p.title for p in PRESETS]
    assert body["default"] == gateway.ctx.settings.default_persona


async def test_without_a_local_ca_there_is_nothing_to_download(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/ca.crt") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "no_local_ca"


async def test_the_local_ca_downloads_as_der(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(serve_lan=True, lan_host="127.0.0.1", lan_port=0)
    tls = gateway.runner.tls
    assert tls is not None and tls.ca_der is not None
    assert tls.cert_path.parent.parent == Path(os.environ["PPLEX_DATA_DIR"])
    async with gateway.http.get(gateway.url + "/ca.crt") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-x509-ca-cert"
        assert "attachment" in resp.headers["Content-Disposition"]
        der = await resp.read()
    assert der == tls.ca_der
    ca = x509.load_der_x509_certificate(der)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


async def _check(gateway: Gateway, key: str | None, **params: str) -> tuple[int, dict[str, Any]]:
    headers = {"X-API-Key": key} if key else {}
    async with gateway.http.get(
        gateway.url + "/v1/stream/check", params=params, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_stream_check_answers_what_the_upgrade_would(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(queue_max=1, sim_config=SimConfig(echo_delay_frames=1))
    key = gateway.new_key()
    status, body = await _check(gateway, key, voice="NATM1", persona="Be brief.")
    assert (status, body["ok"], body["voice"]) == (200, True, "NATM1")

    status, body = await _check(gateway, None)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    status, body = await _check(gateway, key, voice="../../etc/passwd")
    assert status == 400 and body["error"]["code"] == "invalid_voice"
    status, body = await _check(gateway, key, format="mp3")
    assert status == 400 and body["error"]["code"] == "invalid_format"

    # One live session holds the only backend, a second waits in the one-place queue.
    async with (
        gateway.http.ws_connect(gateway.ws_url + "/ws/stream", params={"api_key": key}) as live,
        gateway.http.ws_connect(
            gateway.ws_url + "/ws/stream", params={"api_key": gateway.new_key("second")}
        ) as waiting,
    ):
        assert json.loads((await asyncio.wait_for(live.receive(), 10)).data)["type"] == "ready"
        assert json.loads((await asyncio.wait_for(waiting.receive(), 10)).data)["type"] == "queue"
        status, body = await _check(gateway, gateway.new_key("third"))
        assert status == 503 and body["error"]["code"] == "queue_full"
        assert "queue is full" in body["error"]["message"]
    await gateway.sessions_done()
    status, body = await _check(gateway, key)
    assert status == 200
    limited = gateway.new_key("limited", max_sessions=1)
    async with gateway.http.ws_connect(
        gateway.ws_url + "/ws/stream", params={"api_key": limited}
    ) as ws:
        assert json.loads((await asyncio.wait_for(ws.receive(), 10)).data)["type"] == "ready"
        status, body = await _check(gateway, limited)
        assert status == 429 and body["error"]["code"] == "too_many_sessions"
    await gateway.sessions_done()


@pytest.mark.parametrize("path", ["/", "/web/talk.js", "/ca.crt", "/web/personas.json"])
async def test_static_routes_never_need_a_key(gateway: Gateway, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(gateway.url + path) as resp:
        assert resp.status in (200, 404)
        assert resp.status != 401


async def test_files_come_with_a_strong_etag_and_an_unchanged_one_is_a_304(
    gateway: Gateway,
) -> None:
    for path in ("/", "/web/talk.js", "/web/playback-worklet.js"):
        async with gateway.http.get(gateway.url + path) as resp:
            assert resp.status == 200
            etag = resp.headers["ETag"]
            body = await resp.read()
        assert etag.startswith('"') and etag.endswith('"') and len(etag) > 20  # strong: no W/
        assert resp.headers["Cache-Control"] == "no-cache"  # unversioned URLs: always ask
        for match in (etag, f'"other", {etag}', f"W/{etag}", "*"):
            async with gateway.http.get(
                gateway.url + path, headers={"If-None-Match": match}
            ) as again:
                assert again.status == 304, (path, match)
                assert await again.read() == b""
                assert again.headers["ETag"] == etag
                assert "Content-Security-Policy" in again.headers
        for stale in ('"0123"', etag[:-2] + '"', "", "W/", "x" * 5000 + etag):
            async with gateway.http.get(
                gateway.url + path, headers={"If-None-Match": stale}
            ) as fresh:
                assert fresh.status == 200, (path, stale[:40])
                assert await fresh.read() == body


async def test_a_file_changed_on_disk_after_start_is_not_served(tmp_path: Path) -> None:
    folder = tmp_path / "web"
    shutil.copytree(Path(str(WEB_FILES)), folder)
    app = web.Application()
    talk.install(app, folder)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/web/talk.js") as resp:
                before, etag = await resp.read(), resp.headers["ETag"]
            (folder / "talk.js").write_text("alert('changed under a running gateway')")
            (folder / "index.html").unlink()
            async with http.get(url + "/web/talk.js") as resp:
                assert (await resp.read(), resp.headers["ETag"]) == (before, etag)
            async with http.get(url + "/") as resp:
                assert resp.status == 200 and b"<!doctype html>" in await resp.read()
            # A file that appears later, even one with an allowed-looking name, is not served.
            (folder / "extra.js").write_text("1")
            for path in ("/web/extra.js", "/web/index.html"):
                async with http.get(url + path) as resp:
                    assert resp.status == 404, path
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "path",
    [
        "/web/..%2F..%2Fgateway%2Fapp.py",
        "/web/%2e%2e%2fapi%2ftalk.py",
        "/web/..%5c..%5capp.py",
        "/web/talk.js%00.html",
        "/web/TALK.JS",
        "/web/talk.js/",
        "/web/index.html",
        "/web/__init__.py",
        "/web/%2Fetc%2Fpasswd",
    ],
)
async def test_path_tricks_are_still_refused_with_the_cache(gateway: Gateway, path: str) -> None:
    async with gateway.http.get(gateway.url + path, headers={"If-None-Match": "*"}) as resp:
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
        assert "ETag" not in resp.headers
