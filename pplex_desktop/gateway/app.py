"""The gateway's aiohttp application: one middleware per concern, routes by feature."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.tasks import stop_tasks
from pplex_desktop.gateway.api import admin, metrics_api, public, talk, voices_api
from pplex_desktop.gateway.context import CTX, GatewayContext
from pplex_desktop.gateway.edge.auth import auth_middleware
from pplex_desktop.gateway.edge.hosts import ALLOWED_HOSTS, gateway_hosts, host_middleware
from pplex_desktop.gateway.edge.limits import add_rate_headers, rate_limit_middleware
from pplex_desktop.gateway.edge.origin import origin_middleware
from pplex_desktop.gateway.edge.proxies import proxy_middleware
from pplex_desktop.gateway.errors import error_middleware
from pplex_desktop.gateway.events import QueueChanged
from pplex_desktop.gateway.live import realtime
from pplex_desktop.gateway.live import routes as live
from pplex_desktop.gateway.offline import routes as jobs_api

_log = logging.getLogger(__name__)
USAGE_FLUSH_S = 1.0


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


REVOCATION_CHECK_S = 0.5
SHUTDOWN_GRACE_S = 3.0


async def _watch_revocations(ctx: GatewayContext, wake: asyncio.Event) -> None:
    """End live sessions of keys that were revoked or expired, within half a second."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REVOCATION_CHECK_S):
                await wake.wait()
        wake.clear()
        revoked = {k for k in ctx.sessions.key_ids() if not ctx.keystore.is_active(k)}
        if revoked:
            ctx.sessions.end_where(
                lambda s: s.key_id in revoked,  # noqa: B023 (called before the loop moves on)
                CloseCode.POLICY,
                "The API key of this session was revoked or has expired.",
            )


def _publish_queue(ctx: GatewayContext) -> None:
    last: list[QueueChanged] = []

    def publish() -> None:
        event = QueueChanged(ctx.sessions.live_count, ctx.sessions.queued_count)
        if not last or last[0] != event:
            last[:] = [event]
            ctx.events.emit(event)

    ctx.sessions.add_listener(publish)
    ctx.scheduler.add_listener(publish)


async def _end_sessions(app: web.Application) -> None:
    """On shutdown every live client hears GOING_AWAY with a reason, not a dropped connection."""
    ctx = app[CTX]
    ctx.sessions.end_where(lambda _s: True, CloseCode.GOING_AWAY, "The gateway is shutting down.")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SHUTDOWN_GRACE_S):
            await ctx.sessions.wait_empty()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Backend health checks, usage flushes and revocation checks live as long as the app."""
    ctx = app[CTX]
    await ctx.backends.open()
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def keys_changed() -> None:
        # The key store calls this in whichever thread wrote (the Qt thread, for one).
        loop.call_soon_threadsafe(wake.set)

    ctx.keystore.add_listener(keys_changed)
    ctx.backends.add_listener(lambda _event: ctx.scheduler.dispatch())

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(USAGE_FLUSH_S)
            # A write: in a worker thread, so a lock held elsewhere never stalls live audio.
            await ctx.keystore.db.run(ctx.keystore.flush_usage)
            ctx.limiter.forget_idle()
            ctx.admin_failures.forget_idle()
            ctx.key_failures.forget_idle()

    tasks = [
        asyncio.create_task(ctx.backends.run_checks(), name="backend-health"),
        asyncio.create_task(flush_forever(), name="usage-flush"),
        asyncio.create_task(_watch_revocations(ctx, wake), name="revocations"),
        asyncio.create_task(ctx.metrics.watch_loop_lag(), name="loop-lag"),
    ]
    yield
    ctx.keystore.remove_listener(keys_changed)
    try:
        # A task that died early (a bug in the health checks, say) is logged here, once.
        await stop_tasks(tasks)
    finally:
        # Usage counted since the last flush is written even when the shut-down is cancelled.
        ctx.keystore.flush_usage()
        await ctx.backends.close()


def create_app(ctx: GatewayContext) -> web.Application:
    app = web.Application(
        # Host, then Origin: a name or page that is not ours is refused before its key is even
        # looked at, and the origin check compares against a Host we know is ours.
        middlewares=[
            proxy_middleware,  # first: every later step books the client it names
            host_middleware,
            origin_middleware,
            error_middleware,
            auth_middleware,
            rate_limit_middleware,
        ],
        handler_args={"max_field_size": 16_384},
    )
    app[CTX] = ctx
    app[ALLOWED_HOSTS] = gateway_hosts(lambda: ctx.settings, app)
    app[public.STARTED_AT] = time.monotonic()
    app.add_routes(public.routes)
    app.add_routes(admin.routes)
    app.add_routes(voices_api.routes)
    app.add_routes(live.routes)
    app.add_routes(realtime.routes)
    talk.install(app)
    app.add_routes(metrics_api.routes)
    app.on_response_prepare.append(add_rate_headers)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_background)
    jobs_api.install(app, ctx)  # after _background: job workers need the backend pool open
    ctx.metrics.job_counts = app[jobs_api.JOBS].store.counts_by_state
    ctx.metrics.watch(ctx)
    app.on_shutdown.append(_end_sessions)
    _publish_queue(ctx)
    return app
