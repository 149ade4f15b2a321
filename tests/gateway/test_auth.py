"""Black-box authentication over a real port: every refusal has its own code."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.gateway.conftest import Gateway


async def _code(resp: aiohttp.ClientResponse) -> str:
    body = await resp.json()
    assert set(body) == {"error"}
    assert body["error"]["message"].endswith(".")
    return str(body["error"]["code"])


async def test_no_key(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/v1/info") as resp:
        assert resp.status == 401
        assert await _code(resp) == "missing_api_key"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_malformed_key_is_refused_before_lookup(gateway: Gateway) -> None:
    good = gateway.new_key()
    typo = good[:-1] + ("a" if good[-1] != "a" else "b")
    for bad in ("hello", good[:-3], typo, good + "x"):
        async with gateway.http.get(gateway.url + "/v1/info", headers={"X-API-Key": bad}) as resp:
            assert resp.status == 401
            assert await _code(resp) == "malformed_api_key"


async def test_unknown_revoked_and_expired_keys(gateway: Gateway) -> None:
    from pplex_desktop.core import keys

    unknown = keys.new_key()
    revoked = gateway.store.create("old")
    gateway.store.revoke(revoked.record.id)
    expiring = gateway.store.create("temp", expires_at=gateway.clock.wall() + 60)
    gateway.clock.advance(61)
    cases = {
        unknown: "unknown_api_key",
        revoked.key: "revoked_api_key",
        expiring.key: "expired_api_key",
    }
    for key, code in cases.items():
        async with gateway.http.get(gateway.url + "/v1/info", headers={"X-API-Key": key}) as resp:
            assert resp.status == 401
            assert await _code(resp) == code


@pytest.mark.parametrize("form", ["header", "bearer", "basic", "query"])
async def test_good_key_in_each_form(gateway: Gateway, form: str) -> None:
    key = gateway.new_key("phone")
    url = gateway.url + "/v1/info"
    kwargs: dict[str, Any] = {}
    if form == "header":
        kwargs["headers"] = {"X-API-Key": key}
    elif form == "bearer":
        kwargs["headers"] = {"Authorization": f"Bearer {key}"}
    elif form == "basic":
        url = url.replace("http://", f"http://x:{key}@")
    else:
        kwargs["params"] = {"api_key": key}
    async with gateway.http.get(url, **kwargs) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["key"]["name"] == "phone"
    assert "NATF2" in [v["id"] for v in body["voices"]]
    assert key not in str(body)


async def test_broken_basic_header_is_a_clear_401(gateway: Gateway) -> None:
    headers = {"Authorization": "Basic %%%not-base64"}
    async with gateway.http.get(gateway.url + "/v1/info", headers=headers) as resp:
        assert resp.status == 401
        assert await _code(resp) == "malformed_api_key"


async def test_public_endpoints_need_no_key(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] in ("ok", "degraded")
    sim_url = gateway.sims[0].url
    assert sim_url is not None and sim_url not in str(body), "health is public: no internals"
    async with gateway.http.get(gateway.url + "/v1/voices") as resp:
        voices = await resp.json()
    assert len(voices["voices"]) == 18 and voices["default"] == "NATF2"


async def test_unknown_path_is_404_json_without_auth(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/nope") as resp:
        assert resp.status == 404
        assert await _code(resp) == "not_found"
    async with gateway.http.delete(gateway.url + "/healthz") as resp:
        assert resp.status == 405
        assert await _code(resp) == "method_not_allowed"
        assert "GET" in resp.headers["Allow"]
