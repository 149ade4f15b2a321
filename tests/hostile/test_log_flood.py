"""Log flooding without a key: broken requests must not each cost a traceback.

Found: every request that failed HTTP parsing raised an AssertionError in the access logger
(``request.app`` of a request that was never routed) and aiohttp logged the parser error with
its traceback: 626 KB of log from 500 requests in 0.43 s.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from pplex_desktop.gateway.edge.burstlog import AcceptErrorFilter
from tests.gateway.conftest import Gateway, gateway, make_gateway
from tests.hostile.edge_support import (
    assert_no_secret,
)
from tests.raw_http import host_port, http_get, raw_exchange, split_response

__all__ = ["gateway", "make_gateway"]  # the gateway tier's fixtures, used here too

FLOOD = 500


def _broken(key: str) -> list[bytes]:
    return [
        f"GET /v1/info?api_key={key}&pad={'A' * 9000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        f"G@T /v1/info?api_key={key} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        f"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\x00\r\n\r\n".encode(),
        f"POST /v1/jobs?api_key={key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n".encode(),
        b"\x16\x03\x01\x00\x05hello",
    ]


async def test_a_flood_of_unreadable_requests_logs_a_few_lines(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host, port = host_port(gateway.url)
    key = gateway.new_key()
    kinds = _broken(key)

    def flood() -> list[bytes]:
        return [raw_exchange(host, port, kinds[i % len(kinds)]) for i in range(FLOOD)]

    answers = await asyncio.to_thread(flood)
    assert {split_response(a)[0] for a in answers} == {400}
    ours = [r for r in caplog.records if r.name.startswith(("pplex_desktop.gateway", "aiohttp"))]
    text = "\n".join(logging.Formatter().format(r) for r in ours)
    print(f"{FLOOD} unreadable requests: {len(ours)} log records, {len(text)} bytes")
    assert len(ours) <= 2, text[:3000]
    assert len(text) < 1000
    assert "Traceback" not in text and "AssertionError" not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert_no_secret([text, *answers], key)
    # The summary line comes when the burst's window closes (or the gateway stops).
    await gateway.runner.stop()
    summary = [r.getMessage() for r in caplog.records if "more in" in r.getMessage()]
    assert summary and summary[-1].startswith(f"{FLOOD - 1} more in "), summary


async def test_readable_requests_after_a_flood_are_logged_as_usual(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host, port = host_port(gateway.url)
    await asyncio.to_thread(
        lambda: [raw_exchange(host, port, b"G@T / HTTP/1.1\r\n\r\n") for _ in range(20)]
    )
    status, _body, _took = await http_get(host, port, "/healthz")
    assert status == 200
    served = [
        r.getMessage() for r in caplog.records if r.name == "pplex_desktop.gateway.edge.access"
    ]
    assert served == [served[-1]] and "GET /healthz from 127.0.0.1 answered 200" in served[-1]


def test_accept_errors_are_logged_once_a_window() -> None:
    """Asyncio logs each accept() that fails at the open-file limit (81,453 lines, 36 MB)."""
    now = [0.0]
    accept_errors = AcceptErrorFilter(window_s=10.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        exc = OSError(24, "Too many open files")
        return logging.LogRecord(
            "asyncio",
            logging.ERROR,
            __file__,
            1,
            "socket.accept() out of system resource",
            None,
            (OSError, exc, None),
        )

    passed = [r for r in (record() for _ in range(1000)) if accept_errors.filter(r)]
    assert len(passed) == 1 and passed[0].exc_info is None
    now[0] = 10.5
    later = record()
    assert accept_errors.filter(later)
    assert later.getMessage().endswith("(999 more were not logged)")
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Task exception", None, None)
    assert accept_errors.filter(other)
