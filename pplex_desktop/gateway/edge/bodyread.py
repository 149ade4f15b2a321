"""Reading request bodies: a deadline that moves forward whenever bytes arrive, and a clean
answer for a body that cannot be decoded.

Like nginx's client_body_timeout, it bounds the wait between two reads, not the whole body: a
200 MB upload on a slow link is fine, a body that stops arriving (a Content-Length that
overstates it, a stalled client) gets a 408 instead of holding the handler until the client
gives up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from pplex_desktop.core.errors import PplexError, ValidationError


class BodyTimeoutError(PplexError):
    code = "body_timeout"
    status = 408
    close_connection = True  # the rest of the body may still come: this connection is done


class MalformedBodyError(ValidationError):
    code = "malformed_body"
    close_connection = True


def malformed_body(request: web.Request) -> MalformedBodyError:
    """The error for a body aiohttp could not decode (a gzip label on bytes that are not gzip).

    The payload is marked ended: aiohttp would otherwise read on after the answer, meet the
    same decoding error again and log it with a traceback.
    """
    request.content.feed_eof()
    return MalformedBodyError(
        "The request body cannot be read: it does not match its Content-Encoding or "
        "Transfer-Encoding (a body labelled gzip must be gzip)."
    )


@asynccontextmanager
async def body_deadline(seconds: float) -> AsyncIterator[Callable[[], None]]:
    """Yield a function to call after each read; raise BodyTimeoutError when none comes."""
    loop = asyncio.get_running_loop()
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            yield lambda: timeout.reschedule(loop.time() + seconds)
    except TimeoutError:
        if not timeout.expired():
            raise
        raise BodyTimeoutError(
            f"No part of the request body arrived for {seconds:g} s; it is shorter than its "
            "Content-Length says, or the connection stalled."
        ) from None
