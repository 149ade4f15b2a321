"""The admin API and its brute-force throttle."""

from __future__ import annotations

import aiohttp

from tests.gateway.conftest import ADMIN_SECRET, Gateway


async def test_generate_with_a_form_as_the_original_gateway_documents(gateway: Gateway) -> None:
    form = aiohttp.FormData({"name": "my-mobile-app"})
    async with await gateway.admin("POST", "/admin/keys/generate", data=form) as resp:
        assert resp.status == 200
        made = await resp.json()
    assert made["name"] == "my-mobile-app" and made["rpm"] == 60
    assert made["key"].startswith("pplx_") and made["prefix"] == made["key"][:11]
    assert {"id", "created_at"} <= set(made)
    async with gateway.http.get(
        gateway.url + "/v1/info", headers={"X-API-Key": made["key"]}
    ) as resp:
        assert resp.status == 200


async def test_generate_with_json_and_limits(gateway: Gateway) -> None:
    body = {"name": "batch", "rpm": 5, "max_sessions": 2, "expires_in_days": 1}
    async with await gateway.admin("POST", "/admin/keys/generate", json=body) as resp:
        made = await resp.json()
    assert (made["rpm"], made["max_sessions"]) == (5, 2)
    assert made["expires_at"] == gateway.clock.wall() + 86_400


async def test_bad_fields_are_400_with_sentences(gateway: Gateway) -> None:
    for body in ({"name": ""}, {"name": "x", "rpm": "fast"}, {"name": "x", "rpm": 0}):
        async with await gateway.admin("POST", "/admin/keys/generate", json=body) as resp:
            assert resp.status == 400, body
            assert (await resp.json())["error"]["message"].endswith(".")
    async with await gateway.admin(
        "POST", "/admin/keys/generate", data="{oops", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400


async def test_list_update_revoke_usage(gateway: Gateway) -> None:
    made = gateway.store.create("laptop")
    key_id = made.record.id
    async with await gateway.admin("GET", "/admin/keys") as resp:
        listed = await resp.json()
    assert [k["name"] for k in listed["keys"]] == ["laptop"]
    assert made.key not in str(listed)
    async with await gateway.admin("PATCH", f"/admin/keys/{key_id}", json={"rpm": 7}) as resp:
        assert (await resp.json())["rpm"] == 7
    async with await gateway.admin("PATCH", f"/admin/keys/{key_id}", json={"colour": 1}) as resp:
        assert resp.status == 400
    async with gateway.http.get(gateway.url + "/v1/info", headers={"X-API-Key": made.key}):
        pass
    async with await gateway.admin("GET", f"/admin/keys/{key_id}/usage") as resp:
        usage = await resp.json()
    assert usage["key"]["usage"]["requests"] == 1 and usage["daily"][0]["requests"] == 1
    async with await gateway.admin("DELETE", f"/admin/keys/{key_id}") as resp:
        assert (await resp.json())["state"] == "revoked"
    async with gateway.http.get(gateway.url + "/v1/info", headers={"X-API-Key": made.key}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "revoked_api_key"
    async with await gateway.admin("GET", "/admin/keys/999") as resp:
        assert resp.status == 404
    async with await gateway.admin("GET", "/admin/keys/abc") as resp:
        assert resp.status == 400


async def test_activity_never_shows_a_key(gateway: Gateway) -> None:
    key = gateway.new_key("viewer")
    async with gateway.http.get(gateway.url + "/v1/info", params={"api_key": key}):
        pass
    async with await gateway.admin("GET", "/admin/activity") as resp:
        activity = await resp.json()
    first = next(r for r in activity["requests"] if r["path"].startswith("/v1/info"))
    assert first["key_name"] == "viewer" and "REDACTED" in first["path"]
    assert key not in str(activity)


async def test_wrong_secret_is_401_and_the_sixth_is_throttled(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/admin/keys") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "missing_admin_secret"
    for _ in range(4):
        async with await gateway.admin(
            "GET", "/admin/keys", headers={"X-Admin-Secret": "wrong"}
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_admin_secret"
    async with await gateway.admin(
        "GET", "/admin/keys", headers={"X-Admin-Secret": ADMIN_SECRET}
    ) as resp:
        assert resp.status == 429, "while throttled even the right secret waits"
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "admin_throttled"
    gateway.clock.advance(61)
    async with await gateway.admin("GET", "/admin/keys") as resp:
        assert resp.status == 200
