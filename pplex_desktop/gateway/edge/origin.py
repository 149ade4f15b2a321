"""Which web pages may use the gateway: its own, and the origins listed in ``allowed_origins``.

Keys never travel in cookies, so a foreign page cannot ride on a user's credentials; but a
WebSocket is not covered by CORS at all, and a page that learnt a key (or a browser that cached
HTTP Basic credentials) could otherwise talk through the user's browser. So every request that
carries a foreign ``Origin`` is refused before authentication and before any upgrade, with a
sentence saying how to allow it. Requests without ``Origin`` (scripts, native clients, plain
navigation) are not browsers acting for a page and pass.
"""

from __future__ import annotations

import functools

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from pplex_desktop.core.errors import ForbiddenError
from pplex_desktop.core.hostnames import normalize_origin
from pplex_desktop.gateway.context import CTX
from pplex_desktop.gateway.errors import response_for

# X-Admin-Secret is left out on purpose: the admin API stays with scripts and the desktop.
CORS_REQUEST_HEADERS = "X-API-Key, Authorization, Content-Type"
CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
CORS_EXPOSED = "RateLimit, RateLimit-Policy, Retry-After"
CORS_MAX_AGE_S = 600


def own_origin(request: web.BaseRequest) -> str | None:
    """The origin a page served by this very request's site has."""
    return normalize_origin(f"{'https' if request.secure else 'http'}://{request.host}")


@functools.lru_cache(maxsize=8)
def _allowed(origins: tuple[str, ...]) -> frozenset[str]:
    return frozenset(o for o in map(normalize_origin, origins) if o is not None)


def _cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": CORS_EXPOSED,
        "Vary": "Origin",
    }


def _refuse(origin: str) -> web.Response:
    shown = origin[:100]
    return response_for(
        ForbiddenError(
            f"Web pages from {shown} may not use this gateway. Open the gateway's own talk "
            f"page instead, or add {shown} to allowed_origins in the gateway's settings.",
            code="origin_not_allowed",
        )
    )


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return await handler(request)
    normalized = normalize_origin(origin)
    if normalized is not None and normalized == own_origin(request):
        return await handler(request)
    settings = request.app[CTX].settings
    if normalized is None or normalized not in _allowed(settings.allowed_origins):
        return _refuse(origin)
    if request.method == "OPTIONS" and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return web.Response(
            status=204,
            headers={
                **_cors_headers(origin),
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
                "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
            },
        )
    response = await handler(request)
    if not response.prepared:  # a WebSocket has sent its headers already, and needs no CORS
        response.headers.update(_cors_headers(origin))
    return response
