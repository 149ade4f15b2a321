"""Authentication: API keys for clients, the admin secret for /admin.

Keys are accepted in the forms clients can send: the X-API-Key header, a Bearer token,
HTTP Basic with the key as password (URLs like http://x:KEY@host), the api_key query
parameter, because browsers cannot set headers on a WebSocket, and the WebSocket subprotocol
``openai-insecure-api-key.KEY`` that browser clients of the OpenAI Realtime API offer.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from aiohttp.typedefs import Handler

from pplex_desktop.core.errors import AuthError, RateLimitedError
from pplex_desktop.core.keystore import RefusedKeyError
from pplex_desktop.gateway.access import Access, access_of
from pplex_desktop.gateway.context import ADMIN_FAILURES_PER_MINUTE, API_KEY, CTX, REFUSED_KEY

ADMIN_HEADER = "X-Admin-Secret"
KEY_SUBPROTOCOL = "openai-insecure-api-key."


def extract_key(request: web.Request) -> str | None:
    header = request.headers.get("X-API-Key")
    if header:
        return header.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(
                "The Authorization: Basic header is not valid base64 of user:password.",
                code="malformed_api_key",
            ) from None
        user, _, password = decoded.partition(":")
        return password or user or None
    for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        protocol = offered.strip()
        if protocol.startswith(KEY_SUBPROTOCOL) and len(protocol) > len(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    query = request.query.get("api_key")
    return query.strip() if query else None


def _check_admin(request: web.Request) -> None:
    ctx = request.app[CTX]
    client = request.remote or "unknown"
    throttle = ctx.admin_failures.peek(client, ADMIN_FAILURES_PER_MINUTE)
    if not throttle.allowed:
        raise RateLimitedError(
            "Too many wrong admin secrets from this address; wait before trying again.",
            retry_after_s=throttle.retry_after_s,
            code="admin_throttled",
        )
    secret = request.headers.get(ADMIN_HEADER)
    if not ctx.keystore.check_admin_secret(secret):
        ctx.admin_failures.hit(client, ADMIN_FAILURES_PER_MINUTE)
        if not secret:
            raise AuthError(
                f"Admin endpoints need the admin secret in the {ADMIN_HEADER} header.",
                code="missing_admin_secret",
            )
        raise AuthError("The admin secret is wrong.", code="invalid_admin_secret")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    access = access_of(request)
    if access is Access.ADMIN:
        _check_admin(request)
    elif access is Access.KEY:
        ctx = request.app[CTX]
        try:
            record = ctx.keystore.authenticate(extract_key(request))
        except RefusedKeyError as exc:
            request[REFUSED_KEY] = exc.record
            raise
        request[API_KEY] = record
    return await handler(request)
