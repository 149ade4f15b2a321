"""The gateway's aiohttp application: one middleware per concern, routes by feature."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from pplex_desktop.gateway import admin, public
from pplex_desktop.gateway.auth import auth_middleware
from pplex_desktop.gateway.context import CTX, GatewayContext
from pplex_desktop.gateway.errors import error_middleware
from pplex_desktop.gateway.limits import add_rate_headers, rate_limit_middleware

_log = logging.getLogger(__name__)
USAGE_FLUSH_S = 1.0


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Backend health checks and the usage flush live exactly as long as the app."""
    ctx = app[CTX]
    await ctx.backends.open()

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(USAGE_FLUSH_S)
            ctx.keystore.flush_usage()
            ctx.limiter.forget_idle()
            ctx.admin_failures.forget_idle()

    tasks = [
        asyncio.create_task(ctx.backends.run_checks(), name="backend-health"),
        asyncio.create_task(flush_forever(), name="usage-flush"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctx.keystore.flush_usage()
    await ctx.backends.close()


def create_app(ctx: GatewayContext) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, rate_limit_middleware],
        handler_args={"max_field_size": 16_384},
    )
    app[CTX] = ctx
    app[public.STARTED_AT] = time.monotonic()
    app.add_routes(public.routes)
    app.add_routes(admin.routes)
    app.on_response_prepare.append(add_rate_headers)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_background)
    return app
