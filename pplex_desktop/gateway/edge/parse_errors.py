"""Requests the HTTP parser could not read, answered as the documented JSON errors.

aiohttp's own answer is plain text that quotes up to 100 bytes of the offending line, and it
logs the same with a traceback: a key in a too-long query string or a padded Authorization
header ends up in both. These sentences describe what was wrong and quote nothing.
"""

from __future__ import annotations

import json

from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

MAX_LINE_BYTES = 8190  # aiohttp's and nginx's default (large_client_header_buffers 8k)
MAX_FIELD_BYTES = 16_384
MAX_HEADERS = 128


def _first_line(exc: HttpProcessingError) -> str:
    # llhttp's description comes first; what follows it quotes the request, so it is dropped.
    return (exc.message or "").split(":", 1)[0].split("\n", 1)[0].lower()


def describe(exc: BaseException, max_line: int = MAX_LINE_BYTES) -> tuple[int, str, str]:
    """(status, code, sentence) for a parser failure; nothing of the request is quoted."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else max_line
        if limit == max_line:
            return (
                400,
                "bad_request",
                _sentence(f"its request line is too long (limit {limit} bytes)"),
            )
        return 431, "headers_too_large", _sentence(f"a header is too long (limit {limit} bytes)")
    if isinstance(exc, BadHttpMethod):
        if "HTTPS traffic" in (exc.message or ""):
            return (
                400,
                "bad_request",
                _sentence("it is encrypted (HTTPS) but this port speaks plain HTTP; use http://"),
            )
        return 400, "bad_request", _sentence("its method is not a valid HTTP method")
    if isinstance(exc, BadStatusLine):
        return 400, "bad_request", _sentence("its request line is not valid HTTP/1.x")
    if isinstance(exc, InvalidURLError):
        return 400, "bad_request", _sentence("its target is not a valid URL path")
    if isinstance(exc, InvalidHeader):
        return 400, "bad_request", _sentence("a header holds characters HTTP does not allow")
    if isinstance(exc, TransferEncodingError):
        return 400, "bad_request", _sentence("its chunked body is not valid")
    if isinstance(exc, ContentLengthError):
        return 400, "bad_request", _sentence("its body is shorter than its Content-Length says")
    if isinstance(exc, ContentEncodingError):
        return 400, "bad_request", _sentence("its body does not match its Content-Encoding")
    text = _first_line(exc) if isinstance(exc, HttpProcessingError) else ""
    if "too many headers" in text:
        return 431, "headers_too_large", _sentence(f"it has more than {MAX_HEADERS} headers")
    for needle, what in _BY_DESCRIPTION:
        if needle in text:
            return 400, "bad_request", _sentence(what)
    return 400, "bad_request", _sentence("it is not valid HTTP/1.1")


_BY_DESCRIPTION = (
    ("duplicate", "a header that may appear only once appears twice"),
    ("missing 'host'", "it has no Host header"),
    ("content-length", "its Content-Length header is not valid"),
    ("transfer-encoding", "its Transfer-Encoding header is not valid"),
    ("chunk", "its chunked body is not valid"),
    ("version", "its HTTP version is not valid"),
    ("method", "its method is not a valid HTTP method"),
    ("header", "a header is not valid HTTP"),
    ("url", "its target is not a valid URL path"),
)


def _sentence(reason: str) -> str:
    return f"The request could not be read: {reason}."


def raw_response(
    status: int, code: str, message: str, *, retry_after_s: int | None = None
) -> bytes:
    """A complete HTTP/1.1 answer for a connection aiohttp is not serving (yet, or any more)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    reasons = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
    reason = reasons.get(status, "Service Unavailable")
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "X-Content-Type-Options: nosniff",
    ]
    if retry_after_s is not None:
        head.append(f"Retry-After: {retry_after_s}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
