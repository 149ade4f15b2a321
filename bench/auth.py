"""Cost of the gateway's per-request auth + rate-limit decision.

Two measures in one run: the decision alone (KeyStore.authenticate + limiter.hit, the work the
middlewares add to every request) in microseconds, and a whole authenticated request over a real
socket (/v1/info) against the same gateway's public /healthz (both small JSON answers), as a ratio.

    .venv/bin/python -m bench.auth
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import save, summary
from pplex_desktop.core.clock import SystemClock
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.edge.ratelimit import SlidingWindowLimiter
from pplex_desktop.gateway.server import GatewayRunner

DECISIONS = 50_000
REQUESTS = 2_000


def decision_cost(store: KeyStore, key: str) -> dict[str, float]:
    limiter = SlidingWindowLimiter(SystemClock())
    samples = []
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(DECISIONS // 10):
            record = store.authenticate(key)
            limiter.hit(record.id, 1_000_000)
        samples.append((time.perf_counter() - start) / (DECISIONS // 10) * 1e6)
    return summary(samples)


async def request_ratio(store: KeyStore, key: str) -> dict[str, float]:
    settings = Settings(port=0, backends=(BackendConfig("ws://127.0.0.1:9"),))
    runner = GatewayRunner(settings, store)
    await runner.start()
    assert runner.address is not None
    url = runner.address.url
    timings: dict[str, list[float]] = {"public": [], "authenticated": []}
    async with aiohttp.ClientSession() as http:
        for _ in range(REQUESTS):
            for name, path, headers in (
                ("public", "/healthz", {}),
                ("authenticated", "/v1/info", {"X-API-Key": key}),
            ):
                start = time.perf_counter()
                async with http.get(url + path, headers=headers) as resp:
                    await resp.read()
                timings[name].append((time.perf_counter() - start) * 1e6)
    await runner.stop()
    pub, auth = summary(timings["public"]), summary(timings["authenticated"])
    return {
        "public_p50_us": pub["p50"],
        "authenticated_p50_us": auth["p50"],
        "ratio_p50": auth["p50"] / pub["p50"],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = KeyStore(Path(folder) / "bench.sqlite3", default_rpm=100_000)
        made = store.create("bench", rpm=100_000)
        decision = decision_cost(store, made.key)
        ratio = asyncio.run(request_ratio(store, made.key))
        store.close()
    result = {"decision_us": decision, "http": ratio}
    save("auth", result)
    print(
        f"auth + rate-limit decision: p50 {decision['p50']:.1f} us, "
        f"p95 {decision['p95']:.1f} us per request"
    )
    print(
        f"whole request, authenticated vs public (same gateway, same run): "
        f"{ratio['authenticated_p50_us']:.0f} us vs {ratio['public_p50_us']:.0f} us "
        f"(x{ratio['ratio_p50']:.2f})"
    )


if __name__ == "__main__":
    main()
