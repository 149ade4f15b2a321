"""The gateway's figures for Prometheus and for the desktop's Server page.

Each gateway has its own CollectorRegistry, never the library's global one: a test, or the
desktop restarting its gateway, may have several at once. What the gateway already keeps (live
sessions, the queue, backend health, usage per key, jobs) is read when scraped, by a collector;
only what happens and is then gone (requests, refusals, waits, timings) is counted as it
happens. Labels carry route templates, codes and key names, never a key.
"""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pplex_desktop.gateway.pool.backends import BackendStatus

if TYPE_CHECKING:
    from pplex_desktop.gateway.context import GatewayContext

LOOP_LAG_INTERVAL_S = 0.25
RELAY_SAMPLE_EVERY = 8  # one message in 8 is timed: the hot path stays one bit test
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_HOP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0)
_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_RTF_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class GatewayFigures:
    """The running gateway's state, as the Server page and /metrics both show it."""

    sessions: dict[tuple[str, str], int]  # (endpoint, state) -> how many
    queue_length: int
    backends: list[BackendStatus]

    @property
    def live_sessions(self) -> int:
        return sum(n for (_route, state), n in self.sessions.items() if state == "live")

    @property
    def queued_sessions(self) -> int:
        return sum(n for (_route, state), n in self.sessions.items() if state == "queued")


def figures(ctx: GatewayContext) -> GatewayFigures:
    tally = Tally((s.route, s.state) for s in ctx.sessions.sessions.values())
    return GatewayFigures(dict(tally), len(ctx.scheduler.waiting()), ctx.backends.statuses())


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pplex_http_requests",
            "Requests answered, by route template and status (WebSocket sessions too).",
            ["route", "status"],
            registry=r,
        )
        self.rate_limited = Counter(
            "pplex_rate_limit_refusals",
            "Requests refused by a limit (requests per minute, sessions per key, throttles).",
            ["code"],
            registry=r,
        )
        self.auth_failures = Counter(
            "pplex_auth_failures",
            "Requests refused for their credentials, by code.",
            ["code"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "pplex_queue_wait_seconds",
            "How long callers waited for a free model server.",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.relay_hop = Histogram(
            "pplex_relay_hop_seconds",
            "Time the gateway takes to pass one message on (up: to the model server, down: to "
            f"the client), one message in {RELAY_SAMPLE_EVERY}; up plus down is the gateway's "
            "share of a round trip.",
            ["direction"],
            buckets=_HOP_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "pplex_event_loop_lag_seconds",
            f"How late the event loop wakes a task sleeping {LOOP_LAG_INTERVAL_S} s.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.job_rtf = Histogram(
            "pplex_job_realtime_factor",
            "Offline jobs: processing time over the input's audio length (below 1 is faster "
            "than real time).",
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.job_counts: Callable[[], dict[str, int]] | None = None  # set by the job service
        self._ctx: GatewayContext | None = None

    def watch(self, ctx: GatewayContext) -> None:
        """Read ``ctx``'s state at each scrape."""
        self._ctx = ctx
        self.registry.register(_StateCollector(self))

    def up_hop(self, seconds: float) -> None:
        self.relay_hop.labels("up").observe(seconds)

    def down_hop(self, seconds: float) -> None:
        self.relay_hop.labels("down").observe(seconds)

    async def watch_loop_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.loop_lag.observe(max(0.0, loop.time() - before - LOOP_LAG_INTERVAL_S))


class _StateCollector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # collected afresh each scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        ctx = self.metrics._ctx
        if ctx is None:
            return
        now = figures(ctx)
        sessions = GaugeMetricFamily(
            "pplex_sessions", "Live sessions by endpoint and state.", labels=["endpoint", "state"]
        )
        for (route, state), count in sorted(now.sessions.items()):
            sessions.add_metric([route, state], count)
        yield sessions
        yield GaugeMetricFamily(
            "pplex_queue_length", "Callers waiting for a model server.", value=now.queue_length
        )
        up = GaugeMetricFamily(
            "pplex_backend_up",
            "1 when the model server answers its health check.",
            labels=["backend"],
        )
        busy = GaugeMetricFamily(
            "pplex_backend_busy", "1 while the model server holds a session.", labels=["backend"]
        )
        served = CounterMetricFamily(
            "pplex_backend_sessions_served", "Sessions each model server took.", labels=["backend"]
        )
        for status in now.backends:
            up.add_metric([status.label], 1.0 if status.healthy else 0.0)
            busy.add_metric([status.label], 1.0 if status.busy else 0.0)
            served.add_metric([status.label], status.sessions_served)
        yield from (up, busy, served)
        audio = CounterMetricFamily(
            "pplex_audio_seconds",
            "Audio heard (in) and spoken (out) per API key name, since the key was made.",
            labels=["key", "direction"],
        )
        per_name: dict[str, list[float]] = {}
        for key in ctx.keystore.list_keys():
            totals = per_name.setdefault(key.name, [0.0, 0.0])
            totals[0] += key.audio_in_s
            totals[1] += key.audio_out_s
        for name, (heard, spoken) in sorted(per_name.items()):
            audio.add_metric([name, "in"], heard)
            audio.add_metric([name, "out"], spoken)
        yield audio
        if self.metrics.job_counts is not None:
            jobs = GaugeMetricFamily("pplex_jobs", "Offline jobs by state.", labels=["state"])
            for state, count in sorted(self.metrics.job_counts().items()):
                jobs.add_metric([state], count)
            yield jobs
