"""DNS rebinding and Host echo: the gateway answers only to names it serves.

``Origin: http://evil.example`` with ``Host: evil.example`` used to pass the origin check (a
page whose DNS name was re-pointed at 127.0.0.1 is "same-origin"), and job ``Location`` and
``url`` repeated any Host. First the middleware alone on a bare app, then the real gateway.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.gateway.edge.hosts import ALLOWED_HOSTS, AllowedHosts, base_url, host_middleware
from tests.gateway.hostile import encoded
from tests.hostile.store_support import gateway_command, lan_url, run_to_exit, start_gateway

# -- the middleware on a bare app -------------------------------------------------------------


class _Names:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.now = 0.0
        self.scans = 0

    def discover(self) -> list[str]:
        self.scans += 1
        return list(self.names)

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
async def bare() -> AsyncIterator[tuple[str, _Names]]:
    names = _Names(["gw.example.org", ".corp.example", "192.168.1.20"])

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"base": base_url(request)})

    app = web.Application(middlewares=[host_middleware])
    app[ALLOWED_HOSTS] = AllowedHosts(names.discover, monotonic=names.monotonic, refresh_s=10)
    app.router.add_get("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", names
    finally:
        await runner.cleanup()


async def _get(url: str, host: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Host": host}) as resp:
        return resp.status, await resp.json()


SERVED = {
    "localhost": "http://localhost",
    "localhost:8123": "http://localhost:8123",
    "127.0.0.1:8123": "http://127.0.0.1:8123",
    "[::1]:8123": "http://[::1]:8123",
    "[0:0::1]": "http://[::1]",
    "gw.example.org": "http://gw.example.org",
    "GW.Example.ORG.:8443": "http://gw.example.org:8443",
    "a.b.corp.example": "http://a.b.corp.example",
    "corp.example": "http://corp.example",
    "192.168.1.20:8000": "http://192.168.1.20:8000",
}


@pytest.mark.parametrize("host", list(SERVED))
async def test_served_names_pass_and_urls_are_built_from_them(
    bare: tuple[str, _Names], host: str
) -> None:
    status, body = await _get(bare[0], host)
    assert (status, body) == (200, {"base": SERVED[host]})


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "gw.example.org.evil.example",
        "localhost.evil.example",
        "notcorp.example",
        "192.168.1.21",
        "[::2]:8000",
    ],
)
async def test_other_names_get_421_with_a_sentence(bare: tuple[str, _Names], host: str) -> None:
    status, body = await _get(bare[0], host)
    assert status == 421
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "unknown_host"
    assert "add the name to public_hosts" in error["message"]


@pytest.mark.parametrize(
    "host",
    [
        "local host",
        "localhost:99999",
        "localhost:",
        "localhost:abc",
        "[::1",
        "::1",
        "a@b",
        "[1.2.3.4]",
        "",
    ],
)
async def test_malformed_host_headers_get_400(bare: tuple[str, _Names], host: str) -> None:
    status, body = await _get(bare[0], host)
    assert status == 400
    assert body["error"] == {
        "code": "invalid_host",
        "message": "The Host header is not a host name or address with an optional port.",
    }


async def test_a_request_without_host_is_answered_with_the_address_it_reached(
    bare: tuple[str, _Names],
) -> None:
    port = int(bare[0].rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.0 200")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"base": f"http://127.0.0.1:{port}"}


async def test_new_names_are_found_but_the_scan_is_rate_limited(
    bare: tuple[str, _Names],
) -> None:
    url, names = bare
    assert (await _get(url, "10.0.0.5"))[0] == 421
    scans = names.scans
    names.names.append("10.0.0.5")  # the laptop joined another network
    for _ in range(5):
        assert (await _get(url, "10.0.0.5"))[0] == 421
    assert names.scans == scans, "a flood of foreign names rescanned the interfaces each time"
    names.now += 10
    assert (await _get(url, "10.0.0.5"))[0] == 200
    assert names.scans == scans + 1


# -- through the real gateway -----------------------------------------------------------------


def _key(data: Path) -> str:
    store = KeyStore.in_folder(data)
    try:
        return store.create("host test").key
    finally:
        store.close()


def _upload() -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("audio", encoded("WAV", 0.5), filename="a.wav", content_type="audio/wav")
    return form


async def test_dns_rebinding_is_refused_before_the_origin_check(tmp_path: Path) -> None:
    key = _key(tmp_path)
    running = await start_gateway(tmp_path)
    port = running.url.rsplit(":", 1)[1]
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(
                running.url + "/v1/info", headers={**rebound, "X-API-Key": key}
            ) as resp:
                assert resp.status == 421
                assert (await resp.json())["error"]["code"] == "unknown_host"
            async with http.get(running.url + "/healthz", headers=rebound) as resp:
                assert resp.status == 421
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    running.url + "/api/chat", headers={**rebound, "X-API-Key": key}
                )
            assert refused.value.status == 421
            # The gateway's own name still works, page and all.
            own = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
            async with http.get(running.url + "/v1/info", headers={**own, "X-API-Key": key}) as r:
                assert r.status == 200
    finally:
        assert await running.stop() == 0


async def test_job_urls_come_from_the_validated_host_only(tmp_path: Path) -> None:
    key = _key(tmp_path)
    (tmp_path / "settings.json").write_text(json.dumps({"public_hosts": ["gw.example.org"]}))
    running = await start_gateway(tmp_path)
    port = running.url.rsplit(":", 1)[1]
    try:
        async with aiohttp.ClientSession() as http:
            for host, wanted in (
                (f"localhost:{port}", f"http://localhost:{port}/v1/jobs/job_"),
                ("gw.example.org", "http://gw.example.org/v1/jobs/job_"),
            ):
                async with http.post(
                    running.url + "/v1/jobs",
                    data=_upload(),
                    headers={"X-API-Key": key, "Host": host},
                ) as resp:
                    assert resp.status == 202, await resp.text()
                    body = await resp.json()
                    assert resp.headers["Location"] == body["url"]
                    assert body["url"].startswith(wanted)
            async with http.post(
                running.url + "/v1/jobs",
                data=_upload(),
                headers={"X-API-Key": key, "Host": "evil.example"},
            ) as resp:
                assert resp.status == 421
                assert "Location" not in resp.headers
    finally:
        assert await running.stop() == 0


async def test_the_lan_site_answers_to_its_certificate_names(tmp_path: Path) -> None:
    key = _key(tmp_path)
    local = socket.gethostname().lower()
    name = local if "." in local else f"{local}.local"
    running = await start_gateway(
        tmp_path, "--tls", "auto", "--host", "127.0.0.1", "--lan-port", "0"
    )
    lan = await lan_url(running)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(lan + "/v1/info", headers={"X-API-Key": key, "Host": name}, ssl=False) as resp,
        ):
            assert resp.status == 200
    finally:
        assert await running.stop() == 0
    running = await start_gateway(tmp_path)  # loopback only: this machine's name is not served
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(running.url + "/v1/info", headers={"X-API-Key": key, "Host": name}) as resp,
        ):
            assert resp.status == 421
    finally:
        assert await running.stop() == 0


async def test_a_bad_public_hosts_entry_is_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"public_hosts": ["https://gw.example/"]}))
    done = await run_to_exit(gateway_command(tmp_path, "--demo", "--port", "0"))
    assert done.code == 2
    assert "Traceback" not in done.stderr
    assert "public_hosts has 'https://gw.example/', which is not a host name" in done.stderr
