"""Origin checks and CORS: the gateway's own page and listed origins only; scripts unaffected."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import aiohttp
import pytest

from pplex_desktop.core.hostnames import normalize_origin
from tests.gateway.conftest import Gateway, GatewayFactory

ALLOWED = "https://app.example:8443"


def _upgrade_headers(origin: str | None) -> dict[str, str]:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def _first_message(gateway: Gateway, key: str, origin: str | None) -> dict[str, object]:
    headers = {"Origin": origin} if origin is not None else {}
    async with gateway.http.ws_connect(
        gateway.ws_url + "/ws/stream", params={"api_key": key}, headers=headers
    ) as ws:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        first: dict[str, object] = json.loads(msg.data)
    await gateway.sessions_done()
    return first


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://Phone.Example:443", "https://phone.example"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("https://192.168.1.5:8443/", "https://192.168.1.5:8443"),
        ("https://[FD00::1]:8443", "https://[fd00::1]:8443"),
        ("null", None),
        ("file://", None),
        ("https://a.example/path", None),
        ("https://user@a.example", None),
        ("https://a.example:99999", None),
    ],
)
def test_origins_are_normalized(raw: str, expected: str | None) -> None:
    assert normalize_origin(raw) == expected


async def test_same_origin_upgrade_is_allowed(gateway: Gateway) -> None:
    first = await _first_message(gateway, gateway.new_key(), gateway.url)
    assert first["type"] in ("queue", "ready")


async def test_scripts_without_origin_are_allowed(gateway: Gateway) -> None:
    first = await _first_message(gateway, gateway.new_key(), None)
    assert first["type"] in ("queue", "ready")


async def test_foreign_origin_upgrade_is_refused_before_the_upgrade(gateway: Gateway) -> None:
    key = gateway.new_key()
    for origin in ("http://evil.example", "null", gateway.url.replace("127.0.0.1", "localhost")):
        async with gateway.http.get(
            gateway.url + "/ws/stream", params={"api_key": key}, headers=_upgrade_headers(origin)
        ) as resp:
            assert resp.status == 403
            body = await resp.json()
            assert body["error"]["code"] == "origin_not_allowed"
            assert body["error"]["message"].startswith(f"Web pages from {origin} may not use")
            assert "allowed_origins" in body["error"]["message"]
            assert "Access-Control-Allow-Origin" not in resp.headers
            assert "RateLimit" not in resp.headers  # refused before the key was even looked at
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.http.ws_connect(
            gateway.ws_url + "/ws/stream",
            params={"api_key": key},
            headers={"Origin": "https://evil.example"},
        )
    assert refused.value.status == 403
    assert not gateway.ctx.sessions.sessions
    assert all(k.requests == 0 for k in gateway.store.list_keys())


async def test_an_allowed_origin_may_upgrade(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(allowed_origins=(ALLOWED,))
    first = await _first_message(gateway, gateway.new_key(), "https://APP.example:8443")
    assert first["type"] in ("queue", "ready")


async def test_cors_preflight_and_headers_only_for_allowed_origins(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(allowed_origins=(ALLOWED,))
    key = gateway.new_key()
    preflight = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key",
    }
    async with gateway.http.options(gateway.url + "/v1/info", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "X-API-Key" in resp.headers["Access-Control-Allow-Headers"]
        assert "X-Admin-Secret" not in resp.headers["Access-Control-Allow-Headers"]
        assert "GET" in resp.headers["Access-Control-Allow-Methods"]
    async with gateway.http.get(
        gateway.url + "/v1/info", headers={"Origin": ALLOWED, "X-API-Key": key}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "RateLimit" in resp.headers["Access-Control-Expose-Headers"]
        assert resp.headers["Vary"] == "Origin"
    # Errors are readable by the allowed page too, so it can show the sentence.
    async with gateway.http.get(gateway.url + "/v1/info", headers={"Origin": ALLOWED}) as resp:
        assert resp.status == 401
        assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED

    foreign = {**preflight, "Origin": "https://other.example"}
    async with gateway.http.options(gateway.url + "/v1/info", headers=foreign) as resp:
        assert resp.status == 403
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with gateway.http.get(
        gateway.url + "/v1/info", headers={"Origin": "https://other.example", "X-API-Key": key}
    ) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "origin_not_allowed"
    # The gateway's own page needs no CORS at all.
    async with gateway.http.get(
        gateway.url + "/v1/info", headers={"Origin": gateway.url, "X-API-Key": key}
    ) as resp:
        assert resp.status == 200
        assert "Access-Control-Allow-Origin" not in resp.headers
