"""The state one gateway app shares between its handlers, stored under one AppKey."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from pplex_desktop import __version__
from pplex_desktop.core.clock import Clock
from pplex_desktop.core.keystore import ApiKey, KeyStore
from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.api.metrics import GatewayMetrics
from pplex_desktop.gateway.edge.ratelimit import Decision, SlidingWindowLimiter
from pplex_desktop.gateway.edge.throttle import FailureThrottle
from pplex_desktop.gateway.events import EventHub
from pplex_desktop.gateway.live.sessions import SessionRegistry
from pplex_desktop.gateway.pool.backends import BackendPool
from pplex_desktop.gateway.pool.scheduler import Scheduler

ADMIN_FAILURES_PER_MINUTE = 5
# Keys are tried far more often than the admin secret (every client, every request, a browser
# retrying a stale key), and one address may be a whole household behind NAT or this machine's
# own loopback; 20 a minute still makes guessing even a 6-character legacy key take centuries.
KEY_FAILURES_PER_MINUTE = 20


@dataclass
class GatewayContext:
    settings: Settings
    keystore: KeyStore
    clock: Clock
    events: EventHub
    backends: BackendPool
    limiter: SlidingWindowLimiter = field(init=False)
    admin_failures: FailureThrottle = field(init=False)
    key_failures: FailureThrottle = field(init=False)
    scheduler: Scheduler = field(init=False)
    sessions: SessionRegistry = field(init=False)
    metrics: GatewayMetrics = field(init=False)
    version: str = __version__

    def __post_init__(self) -> None:
        self.limiter = SlidingWindowLimiter(self.clock)
        self.admin_failures = FailureThrottle(
            self.clock,
            limit=ADMIN_FAILURES_PER_MINUTE,
            what="wrong admin secrets",
            code="admin_throttled",
        )
        self.key_failures = FailureThrottle(
            self.clock,
            limit=KEY_FAILURES_PER_MINUTE,
            what="unknown API keys",
            code="key_throttled",
        )
        self.scheduler = Scheduler(self.backends, max_queue=self.settings.queue_max)
        self.sessions = SessionRegistry()
        self.metrics = GatewayMetrics()
        self.scheduler.on_granted = self.metrics.queue_wait.observe


CTX = web.AppKey("pplex_context", GatewayContext)
API_KEY = web.RequestKey("pplex_api_key", ApiKey)
# A known key that was refused (revoked, expired): the request is booked under its name.
REFUSED_KEY = web.RequestKey("pplex_refused_key", ApiKey)
RATE_DECISION = web.RequestKey("pplex_rate_decision", Decision)
