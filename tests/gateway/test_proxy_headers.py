"""X-Forwarded-For and Forwarded name the client only when a trusted proxy sends them."""

from __future__ import annotations

import logging

import pytest

from tests.gateway.conftest import Gateway, GatewayFactory


async def _logged_client(gw: Gateway, caplog: pytest.LogCaptureFixture, **headers: str) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pplex_desktop.gateway.edge.access"):
        async with gw.http.get(gw.url + "/healthz", headers=headers) as resp:
            assert resp.status == 200
            await resp.read()
    lines = [r.getMessage() for r in caplog.records if "/healthz" in r.getMessage()]
    assert len(lines) == 1, lines
    return lines[0].split(" from ", 1)[1].split(" ", 1)[0]


@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ({"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
        # Right to left, past every trusted proxy: the left-most entry may be invented.
        ({"X-Forwarded-For": "6.6.6.6, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"),
        ({"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}, "2001:db8::1"),
        ({"Forwarded": "for=192.0.2.60:8080", "X-Forwarded-For": "203.0.113.9"}, "192.0.2.60"),
        ({"X-Forwarded-For": "unknown"}, "127.0.0.1"),
        ({}, "127.0.0.1"),
    ],
)
async def test_a_trusted_proxy_names_the_client(
    make_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    client: str,
) -> None:
    gw = await make_gateway(trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    assert await _logged_client(gw, caplog, **headers) == client


async def test_headers_from_anyone_else_are_ignored(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await make_gateway(trusted_proxies=("10.0.0.0/8",))  # not the test's loopback
    assert await _logged_client(gw, caplog, **{"X-Forwarded-For": "203.0.113.7"}) == "127.0.0.1"
    gw = await make_gateway()
    assert await _logged_client(gw, caplog, Forwarded="for=203.0.113.7") == "127.0.0.1"


async def _wrong_admin(gw: Gateway, client: str) -> str:
    async with gw.http.get(
        gw.url + "/admin/keys",
        headers={"X-Admin-Secret": "wrong-secret", "X-Forwarded-For": client},
    ) as resp:
        return str((await resp.json())["error"]["code"])


async def test_limits_book_the_forwarded_client(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(trusted_proxies=("127.0.0.1",))
    codes = [await _wrong_admin(gw, "203.0.113.7") for _ in range(6)]
    assert codes[:5] == ["invalid_admin_secret"] * 5 and codes[5] == "admin_throttled"
    # Another client behind the same proxy is not punished for the first one's guesses.
    assert await _wrong_admin(gw, "203.0.113.8") == "invalid_admin_secret"


async def test_an_untrusted_peer_cannot_dodge_its_throttle(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    codes = [await _wrong_admin(gw, f"203.0.113.{i}") for i in range(6)]
    assert codes[5] == "admin_throttled"
