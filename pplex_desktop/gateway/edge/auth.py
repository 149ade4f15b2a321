"""Authentication: API keys for clients, the admin secret for /admin.

Keys are accepted in the forms clients can send: the X-API-Key header, a Bearer token,
HTTP Basic with the key as password (URLs like http://x:KEY@host), the api_key query
parameter, because browsers cannot set headers on a WebSocket, and the WebSocket subprotocol
``openai-insecure-api-key.KEY`` that browser clients of the OpenAI Realtime API offer.

Wrong credentials are throttled per client address, the admin secret and API keys by the same
FailureThrottle with their own limits.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from aiohttp.typedefs import Handler

from pplex_desktop.core import keys
from pplex_desktop.core.errors import AuthError
from pplex_desktop.core.keystore import ApiKey, RefusedKeyError
from pplex_desktop.gateway.context import API_KEY, CTX, REFUSED_KEY
from pplex_desktop.gateway.edge.access import Access, access_of
from pplex_desktop.gateway.edge.proxies import client_address

ADMIN_HEADER = "X-Admin-Secret"
KEY_SUBPROTOCOL = "openai-insecure-api-key."
# A key was sent and matched nothing: what guessing looks like. A missing key (a first page
# load) or a revoked one (known, just dead) is not a guess.
_GUESS_CODES = frozenset({"unknown_api_key", "malformed_api_key"})


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


async def _check_admin(request: web.Request) -> None:
    ctx = request.app[CTX]
    client = client_address(request)
    ctx.admin_failures.check(client)
    secret = request.headers.get(ADMIN_HEADER)
    # scrypt takes ~50 ms the first time: off the loop, so other clients never wait for it.
    if not await ctx.keystore.db.run(ctx.keystore.check_admin_secret, secret):
        ctx.admin_failures.failed(client)
        if not secret:
            raise AuthError(
                f"Admin endpoints need the admin secret in the {ADMIN_HEADER} header.",
                code="missing_admin_secret",
            )
        raise AuthError("The admin secret is wrong.", code="invalid_admin_secret")


def _authenticate(request: web.Request) -> ApiKey:
    ctx = request.app[CTX]
    client = client_address(request)
    secret = extract_key(request)
    wait = ctx.key_failures.throttled(client)
    # A generated key carries 238 random bits and a checksum: nobody guesses one, so it still
    # gets through from a throttled address. That keeps this machine's own desktop app, which
    # shares loopback with any local script stuck on a stale key, working; the guessable
    # legacy keys, and every failure, wait.
    if wait is not None and not (secret and keys.is_well_formed(secret)):
        raise ctx.key_failures.refusal(wait)
    try:
        return ctx.keystore.authenticate(secret)
    except RefusedKeyError as exc:
        # Known but revoked or expired: the activity list names the key it was.
        request[REFUSED_KEY] = exc.record
        raise
    except AuthError as exc:
        if exc.code not in _GUESS_CODES:
            raise
        ctx.key_failures.failed(client)
        if wait is not None:
            raise ctx.key_failures.refusal(wait) from None
        raise


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    access = access_of(request)
    if access is Access.ADMIN:
        await _check_admin(request)
    elif access is Access.KEY:
        request[API_KEY] = _authenticate(request)
    return await handler(request)
