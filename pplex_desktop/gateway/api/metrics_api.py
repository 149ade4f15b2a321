"""GET /metrics: the Prometheus text format, for the admin secret or the metrics token only.

Not on the HTTPS site for the network unless ``metrics_on_lan`` says so: a scraper usually
runs on the same machine or reaches plain HTTP through a proxy, and a phone on the LAN has no
business reading who talks how much.
"""

from __future__ import annotations

import hmac
import ssl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pplex_desktop.core.errors import AuthError, NotFoundError
from pplex_desktop.gateway.context import CTX
from pplex_desktop.gateway.edge.access import public
from pplex_desktop.gateway.edge.auth import ADMIN_HEADER
from pplex_desktop.gateway.edge.proxies import client_address

routes = web.RouteTableDef()
LAN_SSL = web.AppKey("pplex_lan_ssl", ssl.SSLContext)  # the network site's TLS context


def _on_lan_site(request: web.Request) -> bool:
    lan = request.app.get(LAN_SSL)
    transport = request.transport
    return (
        lan is not None and transport is not None and transport.get_extra_info("sslcontext") is lan
    )


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _check(request: web.Request) -> None:
    ctx = request.app[CTX]
    client = client_address(request)
    ctx.admin_failures.check(client)
    token, secret = _bearer(request), request.headers.get(ADMIN_HEADER)
    expected = ctx.settings.metrics_token
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return
    if secret:
        admin: bool = await ctx.keystore.db.run(ctx.keystore.check_admin_secret, secret)
        if admin:
            return
    if not token and not secret:
        raise AuthError(
            f"/metrics needs the admin secret in the {ADMIN_HEADER} header"
            + (" or the metrics token as a Bearer token." if expected else "."),
            code="missing_metrics_credential",
        )
    ctx.admin_failures.failed(client)
    raise AuthError(
        "The admin secret or metrics token for /metrics is wrong.",
        code="invalid_metrics_credential",
    )


@routes.get("/metrics")
@public  # its own credentials, checked below: an API key must not read other keys' usage
async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if _on_lan_site(request) and not ctx.settings.metrics_on_lan:
        raise NotFoundError(
            "There is no endpoint at /metrics on the network site; scrape the gateway's plain "
            "HTTP address, or turn on metrics_on_lan.",
            code="not_found",
        )
    await _check(request)
    body = generate_latest(ctx.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
