"""Access logging with keys redacted, feeding the desktop's activity panel."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from pplex_desktop.core.redact import redact_url
from pplex_desktop.gateway.context import API_KEY, CTX, REFUSED_KEY
from pplex_desktop.gateway.edge.proxies import client_address
from pplex_desktop.gateway.events import RequestServed

_log = logging.getLogger("pplex_desktop.gateway.edge.access")
# Set on requests the HTTP parser could not read: they were never routed, so they have no
# app, and the connection guard logs them, one line per burst.
UNREADABLE = web.RequestKey("pplex_unreadable", bool)


class RedactingAccessLogger(AbstractAccessLogger):
    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        # aiohttp passes its own access logger; ours has a stable name for log filtering.
        del logger
        super().__init__(_log, log_format)

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_s: float) -> None:
        if not isinstance(request, web.Request) or request.get(UNREADABLE, False):
            return
        path = redact_url(str(request.rel_url))
        # A refused key is booked under its name too: "—" would hide who was turned away.
        record = request.get(API_KEY) or request.get(REFUSED_KEY)
        websocket = isinstance(response, web.WebSocketResponse)
        client = client_address(request)
        if _log.isEnabledFor(logging.INFO):
            who = f" with key '{record.name}'" if record is not None else ""
            what = "WebSocket session" if websocket else "request"
            _log.info(
                "%s %s %s from %s%s answered %d after %.1f ms.",
                what.capitalize(),
                request.method,
                path,
                client,
                who,
                response.status,
                time_s * 1000,
            )
        try:
            ctx = request.app[CTX]
        except KeyError:
            return
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        ctx.metrics.requests.labels(route, str(response.status)).inc()
        ctx.events.emit(
            RequestServed(
                at=time.time(),
                method=request.method,
                path=path,
                status=response.status,
                duration_ms=time_s * 1000,
                client=client,
                key_id=record.id if record is not None else None,
                key_name=record.name if record is not None else None,
                kind="websocket" if websocket else "http",
            )
        )
