"""Per-key limits over a real port, with the clock under the test's control."""

from __future__ import annotations

from tests.gateway.conftest import Gateway


async def test_sixty_pass_the_sixty_first_waits(gateway: Gateway) -> None:
    key = gateway.new_key(rpm=60)
    headers = {"X-API-Key": key}
    for i in range(60):
        async with gateway.http.get(gateway.url + "/v1/info", headers=headers) as resp:
            assert resp.status == 200, i
            assert resp.headers["RateLimit-Policy"] == '"per-key";q=60;w=60'
            assert resp.headers["RateLimit"].startswith(f'"per-key";r={59 - i};')
        gateway.clock.advance(0.5)
    async with gateway.http.get(gateway.url + "/v1/info", headers=headers) as resp:
        assert resp.status == 429
        body = await resp.json()
        retry_after = int(resp.headers["Retry-After"])
        assert resp.headers["RateLimit"].startswith('"per-key";r=0;')
    assert body["error"]["code"] == "rate_limited"
    assert "60 requests per minute" in body["error"]["message"]
    # The first request was 30 s ago in fake time: its slot frees 30 s from now.
    assert retry_after == 30
    gateway.clock.advance(retry_after)
    async with gateway.http.get(gateway.url + "/v1/info", headers=headers) as resp:
        assert resp.status == 200


async def test_limits_are_per_key(gateway: Gateway) -> None:
    a, b = gateway.new_key("a", rpm=2), gateway.new_key("b", rpm=2)
    statuses = []
    for key in (a, a, a, b):
        async with gateway.http.get(gateway.url + "/v1/info", headers={"X-API-Key": key}) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 200, 429, 200]


async def test_lowering_a_limit_applies_at_once(gateway: Gateway) -> None:
    made = gateway.store.create("c", rpm=10)
    headers = {"X-API-Key": made.key}
    for _ in range(3):
        async with gateway.http.get(gateway.url + "/v1/info", headers=headers) as resp:
            assert resp.status == 200
    gateway.store.update(made.record.id, rpm=3)
    async with gateway.http.get(gateway.url + "/v1/info", headers=headers) as resp:
        assert resp.status == 429


async def test_usage_is_counted(gateway: Gateway) -> None:
    made = gateway.store.create("counted")
    for _ in range(4):
        async with gateway.http.get(
            gateway.url + "/v1/info", headers={"X-API-Key": made.key}
        ) as resp:
            assert resp.status == 200
    gateway.store.flush_usage()
    record = gateway.store.get(made.record.id)
    assert record.requests == 4
    assert record.last_used_at is not None
