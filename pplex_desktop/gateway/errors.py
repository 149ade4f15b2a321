"""The one place where failures become responses: JSON, a stable code, a human sentence.

No traceback ever reaches a client: unexpected exceptions are logged here and answered with
a generic sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from pplex_desktop.core.errors import AuthError, PplexError, RateLimitedError, UnavailableError
from pplex_desktop.core.redact import redact_url
from pplex_desktop.gateway.jsonout import json_response

_log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("bad_request", "The request is malformed."),
    404: ("not_found", "There is no endpoint at {path}."),
    405: ("method_not_allowed", "{path} does not accept {method}."),
    408: ("request_timeout", "The request took too long to arrive."),
    413: ("payload_too_large", "The request body is larger than this gateway accepts."),
    415: ("unsupported_media_type", "The request body has a type this endpoint cannot read."),
    431: ("headers_too_large", "The request headers are too large."),
}


def json_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def response_for(exc: PplexError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitedError | UnavailableError) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, int(exc.retry_after_s + 0.999)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="pplex-gateway"'
    extra = getattr(exc, "headers", None)
    if isinstance(extra, Mapping):
        headers.update(extra)
    response = json_error(exc.status, exc.code, exc.message, headers)
    if getattr(exc, "close_connection", False):
        response.force_close()
    return response


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc
    code, template = _HTTP_CODES.get(exc.status, ("http_error", "{reason}."))
    message = template.format(path=request.path, method=request.method, reason=exc.reason)
    if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.path} does not accept {request.method}; use {allowed}."
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return json_error(exc.status, code, message, headers)


def _count(request: web.Request, exc: PplexError) -> None:
    # Imported here: the context module pulls in the whole gateway.
    from pplex_desktop.gateway.context import CTX

    ctx = request.app.get(CTX)
    if ctx is None:
        return
    if isinstance(exc, AuthError):
        ctx.metrics.auth_failures.labels(exc.code).inc()
    elif isinstance(exc, RateLimitedError):
        ctx.metrics.rate_limited.labels(exc.code).inc()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PplexError as exc:
        _count(request, exc)
        return response_for(exc)
    except web.HTTPException as exc:
        return _from_http_exception(request, exc)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # noqa: BLE001 (the last line of defence: log it, answer politely)
        _log.exception(
            "An unexpected error occurred while serving %s %s.",
            request.method,
            redact_url(str(request.rel_url)),
        )
        return json_error(
            500,
            "internal_error",
            "The gateway hit an unexpected error; it has been logged for the operator.",
        )
