"""Wrong admin secrets are never logged, nor repeated in an answer, however they are sent.

The admin API reads the secret from the X-Admin-Secret header only (and /metrics a Bearer
token too), but clients send it every way HTTP allows: as a Bearer token, as HTTP Basic, in the
query, twice, with bytes a library would refuse, longer than the parser accepts. Each of those
reaches the access log, the auth middleware, the throttle or aiohttp's own parser, and none of
them may write the secret down (a near miss of the real one gives the real one away).
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

import pytest

from tests.gateway.conftest import ADMIN_SECRET, Gateway
from tests.raw_http import host_port, raw_request

WRONG = (
    "guess-admin-secret-000001",
    ADMIN_SECRET[:-1] + "X",  # a near miss: most of it is the real one
    "pplxadmin_" + "Qw3" * 14,  # shaped like a generated admin secret
    "pplx_" + "AbC9" * 10,  # shaped like an API key
    "s\u00e9cret-\u00fcn\u00efc\u00f6d\u00e9-0123456789",  # not ASCII
)
ADMIN_ROUTES = (("GET", "/admin/keys"), ("POST", "/admin/keys/generate"), ("GET", "/metrics"))
LOGGERS = ("", "aiohttp", "aiohttp.access", "aiohttp.server", "aiohttp.web", "asyncio")


def _basic(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _ways(secret: str) -> list[tuple[str, dict[str, str]]]:
    """(query, headers) pairs: each a way a client may send ``secret``."""
    quoted = quote(secret, safe="")
    return [
        ("", {"X-Admin-Secret": secret}),
        ("", {"x-admin-secret": f"  {secret}  "}),
        ("", {"Authorization": f"Bearer {secret}"}),
        ("", {"Authorization": f"bearer {secret}", "X-Admin-Secret": secret + "2"}),
        ("", {"Authorization": f"Basic {_basic('admin:' + secret)}"}),
        ("", {"Authorization": f"Basic {_basic(secret)}"}),
        ("", {"Authorization": f"Basic {secret}"}),  # not base64
        ("", {"Authorization": secret}),  # no scheme
        ("", {"X-API-Key": secret}),
        ("", {"Cookie": f"admin_secret={quoted}"}),
        (f"?admin_secret={quoted}", {}),
        (f"?X-Admin-Secret={quoted}", {}),
        (f"?secret={quoted}", {}),
        (f"?password={quoted}", {}),
        (f"?api_key={quoted}&admin_secret={quoted}", {}),
    ]


def _request(method: str, target: str, headers: dict[str, str], port: int) -> bytes:
    """One request as bytes: UTF-8 in headers is sent as is, as hand-written clients do."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _malformed(secret: str, port: int) -> list[bytes]:
    """Requests aiohttp's client would refuse to send."""
    base = f"GET /admin/keys HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    return [
        (base + f"X-Admin-Secret: {secret}\r\nX-Admin-Secret: {secret}\r\n\r\n").encode(),
        (base + f"X-Admin-Secret: {secret}\x01\r\n\r\n").encode(),  # a control character
        (base + f"X-Admin-Secret: {secret}\x7f\r\n\r\n").encode(),
        (base + f"X-Admin-Secret: {secret * 400}\r\n\r\n").encode(),  # past the header limit
        (base + f"X-Admin-{secret}: 1\r\n\r\n").encode(),  # in a header's name
        (base + f"X-Admin-Secret {secret}\r\n\r\n").encode(),  # no colon
        (base + f"X-Admin-Secret: {secret}\n\n").encode(),  # bare line feeds
        (f"GET /admin/keys?admin_secret={secret} HTTP/1.1\r\nHost: x\r\n\r\n").encode(),
        (base + f"X-Admin-Secret: {secret}\r\n").encode() + b"\xff\xfe: \xc3\r\n\r\n",
    ]


def _needles(secret: str) -> list[str]:
    """The secret and the encodings of it that give it away."""
    quoted = quote(secret, safe="")
    forms = {secret, quoted, quote(secret), _basic("admin:" + secret), _basic(secret)}
    forms.add(secret.encode().decode("latin-1"))  # as a parser that reads bytes as Latin-1 shows it
    forms.add(repr(secret.encode())[2:-1])  # as b'...' shows it
    return sorted(forms)


def _log_text(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(r) for r in caplog.records]


@pytest.mark.parametrize("secret", WRONG, ids=range(len(WRONG)))
async def test_a_wrong_admin_secret_is_never_logged_or_answered(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    host, port = host_port(gateway.url)
    answers: list[str] = []
    statuses: list[int] = []
    sent = 0
    for method, path in ADMIN_ROUTES:
        for query, headers in _ways(secret):
            # Past the throttle each time, so every way reaches the secret check.
            gateway.clock.advance(61)
            status, answer_headers, body = await raw_request(
                host, port, _request(method, path + query, headers, port)
            )
            statuses.append(status)
            answers.append(repr(answer_headers) + body.decode("utf-8", "replace"))
            sent += 1
    for request in _malformed(secret, port):
        gateway.clock.advance(61)
        try:
            status, answer_headers, body = await raw_request(host, port, request)
        except (ConnectionError, EOFError, ValueError, IndexError) as exc:
            answers.append(repr(exc))  # the parser hung up: nothing to read, nothing leaked
            continue
        statuses.append(status)
        answers.append(repr(answer_headers) + body.decode("utf-8", "replace"))
        sent += 1

    assert all(400 <= s < 500 for s in statuses), statuses
    assert statuses.count(401) >= len(ADMIN_ROUTES) * 4, "the secret check saw the secrets"
    logged = _log_text(caplog)
    # The test sees what is logged: every request was, redacted.
    access = [line for line in logged if " answered " in line]
    assert len(access) >= sent - len(_malformed(secret, port)), access[-3:]
    assert any("admin_secret=REDACTED" in line for line in access)
    for needle in [*_needles(secret), ADMIN_SECRET]:
        for line in logged:
            assert needle not in line, f"a wrong admin secret was logged: {line[:300]!r}"
        for answer in answers:
            assert needle not in answer, f"a wrong admin secret was answered: {answer[:300]!r}"
