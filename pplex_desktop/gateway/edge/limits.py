"""Per-key rate limiting of every authenticated request, WebSocket upgrades included."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from pplex_desktop.core.errors import RateLimitedError
from pplex_desktop.gateway.context import API_KEY, CTX, RATE_DECISION


class _RateLimited(RateLimitedError):
    def __init__(self, message: str, retry_after_s: float, headers: dict[str, str]) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.headers = headers


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    record = request.get(API_KEY)
    if record is None:
        return await handler(request)
    ctx = request.app[CTX]
    decision = ctx.limiter.hit(record.id, record.rpm)
    if not decision.allowed:
        raise _RateLimited(
            f"The key '{record.name}' is limited to {record.rpm} requests per minute; retry "
            f"in {decision.retry_after_header} s.",
            decision.retry_after_s,
            {"RateLimit-Policy": decision.policy_header(), "RateLimit": decision.state_header()},
        )
    request[RATE_DECISION] = decision
    ctx.keystore.record_usage(record.id, requests=1)
    return await handler(request)


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: the remaining budget rides on every success, WebSockets too."""
    decision = request.get(RATE_DECISION)
    if decision is not None:
        response.headers["RateLimit-Policy"] = decision.policy_header()
        response.headers["RateLimit"] = decision.state_header()
