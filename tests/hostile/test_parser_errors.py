"""Requests the HTTP parser cannot read: a JSON sentence that quotes nothing, and no key logged.

aiohttp's own answer is plain text with the first 100 bytes of the offending line (a key in
the query string, or a padded Authorization header, included) and it logs the same with a
traceback at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from pplex_desktop.core.redact import RedactingFilter
from tests.gateway.conftest import ADMIN_SECRET, Gateway, GatewayFactory, gateway, make_gateway
from tests.hostile.edge_support import (
    assert_no_secret,
    gateway_log,
)
from tests.raw_http import host_port, raw_exchange, split_response

__all__ = ["gateway", "make_gateway"]  # the gateway tier's fixtures, used here too

KEY_PLACE = "{key}"


def _case(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + body


# (what the attack is, the bytes with {key} where the key goes, status, words of the sentence)
CASES: list[tuple[str, bytes, int, str]] = [
    (
        "key in a too-long request line",
        _case("GET /v1/info?api_key={key}&pad=" + "A" * 9000 + " HTTP/1.1\nHost: x\n\n"),
        400,
        "request line is too long (limit 8190 bytes)",
    ),
    (
        "key in an Authorization header padded past the limit",
        _case(
            "GET /v1/info HTTP/1.1\nHost: x\nAuthorization: Bearer {key}"
            + " " * 20
            + "B" * 17_000
            + "\n\n"
        ),
        431,
        "a header is too long (limit 16384 bytes)",
    ),
    (
        "a header name past the limit",
        _case("GET /v1/info HTTP/1.1\nHost: x\nX-{key}" + "N" * 17_000 + ": v\n\n"),
        431,
        "a header is too long",
    ),
    (
        "too many headers",
        _case(
            "GET /v1/info HTTP/1.1\nHost: x\nX-API-Key: {key}\n"
            + "".join(f"X-H{i}: v\n" for i in range(140))
            + "\n"
        ),
        431,
        "more than 128 headers",
    ),
    ("bad method", _case("G@T /v1/info?api_key={key} HTTP/1.1\nHost: x\n\n"), 400, "method"),
    ("bad version", _case("GET /v1/info?api_key={key} HTTP/9.Z\nHost: x\n\n"), 400, "HTTP"),
    ("not HTTP at all", _case("{key} hello there\n\n"), 400, "could not be read"),
    (
        "TLS on the plain port",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"{key}" + b"\0" * 64,
        400,
        "HTTPS",
    ),
    (
        "space in a header name",
        _case("GET /v1/info HTTP/1.1\nHost: x\nX Bad: {key}\n\n"),
        400,
        "header",
    ),
    (
        "control character in a header value",
        _case("GET /v1/info HTTP/1.1\nHost: x\nX-API-Key: {key}\x01\x7f\n\n"),
        400,
        "could not be read",
    ),
    (
        "NUL in a header value",
        _case("GET /v1/info HTTP/1.1\nHost: x\nX-API-Key: {key}\x00\n\n"),
        400,
        "header",
    ),
    (
        "no Host header",
        _case("GET /v1/info?api_key={key} HTTP/1.1\nAccept: */*\n\n"),
        400,
        "no Host header",
    ),
    (
        "Content-Length that is not a number",
        _case("POST /v1/jobs?api_key={key} HTTP/1.1\nHost: x\nContent-Length: 12x\n\n"),
        400,
        "Content-Length",
    ),
    (
        "two Content-Length headers",
        _case(
            "POST /v1/jobs?api_key={key} HTTP/1.1\nHost: x\nContent-Length: 1\n"
            "Content-Length: 2\n\nab"
        ),
        400,
        "could not be read",
    ),
    (
        "Content-Length with chunked encoding",
        _case(
            "POST /v1/jobs?api_key={key} HTTP/1.1\nHost: x\nContent-Length: 5\n"
            "Transfer-Encoding: chunked\n\n0\n\n"
        ),
        400,
        "could not be read",
    ),
    (
        "bad chunk size",
        _case(
            "POST /v1/jobs?api_key={key} HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
            "ZZ\nhello\n0\n\n"
        ),
        400,
        "chunked",
    ),
    (
        "unknown transfer coding",
        _case(
            "POST /v1/jobs?api_key={key} HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, gzip\n\n"
            "0\n\n"
        ),
        400,
        "could not be read",
    ),
    (
        "obsolete line folding",
        _case("GET /v1/info HTTP/1.1\nHost: x\nX-API-Key: {key}\n continued\n\n"),
        400,
        "could not be read",
    ),
    (
        "invalid target",
        _case("GET /v1/info?api_key={key}#\x7f\x01 HTTP/1.1\nHost: x\n\n"),
        400,
        "read",
    ),
]


@pytest.mark.parametrize(
    ("attack", "template", "status", "words"), CASES, ids=[c[0] for c in CASES]
)
async def test_unreadable_request_gets_a_json_sentence_and_no_key_is_logged(
    make_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
    attack: str,
    template: bytes,
    status: int,
    words: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await make_gateway()
    key = gw.new_key()
    host, port = host_port(gw.url)
    raw = await asyncio.to_thread(
        raw_exchange, host, port, template.replace(KEY_PLACE.encode(), key.encode())
    )
    got, headers, body = split_response(raw)
    assert got == status, (attack, raw[:300])
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["code"] == ("headers_too_large" if status == 431 else "bad_request")
    assert error["message"].startswith("The request could not be read: ")
    assert words in error["message"]
    logged = [logging.Formatter().format(r) for r in caplog.records]
    assert_no_secret([raw, *logged], key, key[-12:])
    # Nothing of the request is quoted back: no padding, no header names.
    assert b"AAAA" not in body and b"BBBB" not in body and b"X-API" not in body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_records_of_other_libraries_are_redacted() -> None:
    """The last line of defence for aiohttp's and asyncio's own messages and tracebacks."""
    key = "pplx_" + "k" * 40
    try:
        raise ValueError(f"Got more than 8190 bytes when reading: b'GET /?api_key={key}'.")
    except ValueError as exc:
        record = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error from %s",
            (key,),
            (type(exc), exc, exc.__traceback__),
        )
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert key not in text and "pplx_REDACTED" in text and "ValueError" in text


async def test_admin_secret_padded_past_the_header_limit_is_not_echoed(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host, port = host_port(gateway.url)
    request = (
        f"GET /admin/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Admin-Secret: {ADMIN_SECRET}{'C' * 17_000}"
        "\r\n\r\n"
    ).encode()
    raw = await asyncio.to_thread(raw_exchange, host, port, request)
    status, _headers, body = split_response(raw)
    assert status == 431
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    assert_no_secret([raw, *gateway_log(caplog.records)], ADMIN_SECRET, ADMIN_SECRET[:16])
