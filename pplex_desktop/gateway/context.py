"""The state one gateway app shares between its handlers, stored under one AppKey."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from pplex_desktop import __version__
from pplex_desktop.core.clock import Clock
from pplex_desktop.core.keystore import ApiKey, KeyStore
from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.backends import BackendPool
from pplex_desktop.gateway.events import EventHub
from pplex_desktop.gateway.ratelimit import Decision, SlidingWindowLimiter
from pplex_desktop.gateway.scheduler import Scheduler
from pplex_desktop.gateway.sessions import SessionRegistry

ADMIN_FAILURES_PER_MINUTE = 5


@dataclass
class GatewayContext:
    settings: Settings
    keystore: KeyStore
    clock: Clock
    events: EventHub
    backends: BackendPool
    limiter: SlidingWindowLimiter = field(init=False)
    admin_failures: SlidingWindowLimiter = field(init=False)
    scheduler: Scheduler = field(init=False)
    sessions: SessionRegistry = field(init=False)
    version: str = __version__

    def __post_init__(self) -> None:
        self.limiter = SlidingWindowLimiter(self.clock)
        self.admin_failures = SlidingWindowLimiter(self.clock)
        self.scheduler = Scheduler(self.backends, max_queue=self.settings.queue_max)
        self.sessions = SessionRegistry()


CTX = web.AppKey("pplex_context", GatewayContext)
API_KEY = web.RequestKey("pplex_api_key", ApiKey)
# A known key that was refused (revoked, expired): the request is booked under its name.
REFUSED_KEY = web.RequestKey("pplex_refused_key", ApiKey)
RATE_DECISION = web.RequestKey("pplex_rate_decision", Decision)
