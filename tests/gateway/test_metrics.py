"""GET /metrics: its own credentials, and counters that move when things happen."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pplex_desktop.moshi.client import ConnectError, MoshiSession, SessionOptions
from tests import talk
from tests.gateway.conftest import ADMIN_SECRET, Gateway, GatewayFactory
from tests.gateway.offline_support import finished, submit, tone_wav
from tests.signals import tone

TOKEN = "scrape-token-0123456789abcdef"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(gw: Gateway, **headers: str) -> tuple[Samples, str]:
    async with gw.http.get(
        gw.url + "/metrics", headers=headers or {"X-Admin-Secret": ADMIN_SECRET}
    ) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, text


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_metrics_credential"),
        ({"X-Admin-Secret": "wrong"}, "invalid_metrics_credential"),
        ({"Authorization": "Bearer not-the-token"}, "invalid_metrics_credential"),
    ],
)
async def test_metrics_refuse_without_their_credential(
    make_gateway: GatewayFactory, headers: dict[str, str], code: str
) -> None:
    gw = await make_gateway(metrics_token=TOKEN)
    key = gw.new_key()
    async with gw.http.get(gw.url + "/metrics", headers=headers) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == code
    # An API key is no credential for everybody's usage.
    async with gw.http.get(gw.url + "/metrics", headers={"X-API-Key": key}) as resp:
        assert resp.status == 401


async def test_metrics_accept_the_admin_secret_or_the_token(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(metrics_token=TOKEN)
    await scrape(gw)
    await scrape(gw, Authorization=f"Bearer {TOKEN}")
    plain = await make_gateway()  # no token configured: a Bearer never passes
    async with plain.http.get(
        plain.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 401


async def test_metrics_are_off_the_lan_site_by_default(make_gateway: GatewayFactory) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    for on_lan, status in ((False, 404), (True, 200)):
        gw = await make_gateway(
            serve_lan=True, lan_host="127.0.0.1", lan_port=0, metrics_on_lan=on_lan
        )
        lan = gw.runner.lan_address
        assert lan is not None
        async with gw.http.get(
            lan.url + "/metrics", headers={"X-Admin-Secret": ADMIN_SECRET}, ssl=insecure
        ) as resp:
            assert resp.status == status
        await scrape(gw)  # the plain loopback site always has them


def _options(key: str) -> SessionOptions:
    return SessionOptions(api_key=key, voice_prompt="NATM2", handshake_timeout=10)


async def test_counters_move_with_a_session_a_job_and_refusals(gateway: Gateway) -> None:
    gw = gateway
    made = gw.store.create("talker", rpm=3, max_sessions=1)
    before, _ = await scrape(gw)
    assert value(before, "pplex_backend_up", backend=gw.sims[0].url or "") in (0.0, 1.0)
    async with await MoshiSession.connect(gw.url, _options(made.key)) as session:
        during, _ = await scrape(gw)
        assert value(during, "pplex_sessions", endpoint="/api/chat", state="live") == 1
        await talk.converse(session, tone(300, 0.8), expected_frames=10, lead_s=0.5)
    await gw.sessions_done()
    # A refusal: a second key over its rate, and a key nobody issued.
    limited = gw.new_key("limited", rpm=1)
    for _ in range(2):
        async with gw.http.get(gw.url + "/v1/info", headers={"X-API-Key": limited}) as resp:
            await resp.read()
    async with gw.http.get(gw.url + "/v1/info", headers={"X-API-Key": "pplx_nope"}) as resp:
        assert resp.status == 401
    with pytest.raises(ConnectError, match="HTTP 401"):
        await MoshiSession.connect(gw.url, _options("pplx_wrong"))
    # A job.
    job_key = gw.new_key("jobs", rpm=100)
    job = await submit(gw, job_key, tone_wav(0.5))
    assert (await finished(gw, job_key, job["id"]))["state"] == "done"

    after, text = await scrape(gw)
    assert value(after, "pplex_sessions", endpoint="/api/chat", state="live") == 0
    assert value(after, "pplex_audio_seconds_total", key="talker", direction="in") == (
        pytest.approx(0.8, abs=0.09)
    )
    assert value(after, "pplex_audio_seconds_total", key="talker", direction="out") > 0.5
    label = gw.ctx.backends.backends[0].config.label
    assert value(after, "pplex_backend_sessions_served_total", backend=label) == 2  # + the job
    assert value(after, "pplex_queue_wait_seconds_count") == 2
    assert value(after, "pplex_http_requests_total", route="/api/chat", status="101") == 1
    assert value(after, "pplex_http_requests_total", route="/v1/info", status="429") == 1
    assert value(after, "pplex_rate_limit_refusals_total", code="rate_limited") == 1
    assert (
        value(after, "pplex_auth_failures_total", code="malformed_api_key")
        + value(after, "pplex_auth_failures_total", code="unknown_api_key")
        == 2
    )
    assert value(after, "pplex_jobs", state="done") == 1
    assert value(after, "pplex_job_realtime_factor_count") == 1
    assert value(after, "pplex_relay_hop_seconds_count", direction="up") >= 1
    assert value(after, "pplex_relay_hop_seconds_count", direction="down") >= 1
    assert value(after, "pplex_event_loop_lag_seconds_count") >= 1
    assert value(after, "pplex_queue_length") == 0
    for secret in (made.key, limited, job_key, ADMIN_SECRET):
        assert secret not in text


async def test_each_gateway_has_its_own_registry(make_gateway: GatewayFactory) -> None:
    one, two = await make_gateway(), await make_gateway()
    async with one.http.get(one.url + "/v1/info") as resp:
        assert resp.status == 401
    first, _ = await scrape(one)
    second, _ = await scrape(two)
    assert value(first, "pplex_auth_failures_total", code="missing_api_key") == 1
    assert value(second, "pplex_auth_failures_total", code="missing_api_key") == 0


async def test_the_server_page_reads_the_same_figures(gateway: Gateway) -> None:
    from pplex_desktop.gateway.api.metrics import figures

    key = gateway.new_key()
    async with await MoshiSession.connect(gateway.url, _options(key)):
        now = figures(gateway.ctx)
        samples, _ = await scrape(gateway)
        assert now.live_sessions == 1
        assert value(samples, "pplex_sessions", endpoint="/api/chat", state="live") == 1
        assert [b.busy for b in now.backends] == [True]
    await asyncio.wait_for(gateway.sessions_done(), 10)
    assert figures(gateway.ctx).live_sessions == 0


async def test_the_loop_lag_watch_runs_from_the_start(gateway: Gateway) -> None:
    async with asyncio.timeout(5):
        while True:
            samples, _ = await scrape(gateway)
            if value(samples, "pplex_event_loop_lag_seconds_count") >= 1:
                break
            await asyncio.sleep(0.1)  # polling a scrape: there is no event to await


def test_the_desktops_gateway_offers_the_figures(tmp_path: Path) -> None:
    from pplex_desktop.core.keystore import KeyStore
    from pplex_desktop.core.settings import Settings
    from pplex_desktop.gateway.api.metrics import GatewayFigures
    from pplex_desktop.gateway.server import DEMO_LABEL, GatewayServer

    store = KeyStore(tmp_path / "keys.sqlite3")
    server = GatewayServer(Settings(port=0, demo=True), store)
    try:
        assert server.figures() is None  # not started: nothing to show

        async def read() -> GatewayFigures | None:
            return server.figures()

        server.start()
        now = server.thread.submit(read()).result(10)
        assert now is not None
        assert (now.live_sessions, now.queue_length) == (0, 0)
        assert [b.label for b in now.backends] == [DEMO_LABEL]
    finally:
        server.shutdown()
        store.close()
