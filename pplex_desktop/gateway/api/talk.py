"""The talk page for phones and laptops, its files, the CA download and a pre-flight check.

The page is plain files from ``resources/web`` (no build step, nothing from a CDN), read once
when the app is built and served from memory with an ETag, under a strict
Content-Security-Policy. Serving it needs no key; everything it then asks of the API
does. ``/v1/stream/check`` exists because browsers hide why a WebSocket upgrade failed: the
page asks first and gets the refusal (bad key, queue full, no model server) as a sentence.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from pplex_desktop.core.personas import PRESETS
from pplex_desktop.gateway.api.static_files import StaticFiles, not_modified
from pplex_desktop.gateway.context import API_KEY, CTX
from pplex_desktop.gateway.edge.access import public
from pplex_desktop.gateway.errors import json_error
from pplex_desktop.gateway.jsonout import json_response
from pplex_desktop.gateway.lan.tls import LAN_TLS
from pplex_desktop.gateway.live.params import parse_session_params
from pplex_desktop.gateway.live.stream import parse_format

routes = web.RouteTableDef()
WEB_FILES = resources.files("pplex_desktop.resources") / "web"
ASSETS = {
    "talk.js": "text/javascript",
    "talk.css": "text/css",
    "capture-worklet.js": "text/javascript",
    "playback-worklet.js": "text/javascript",
    "icon.svg": "image/svg+xml",
}
PAGE = "index.html"  # served at "/", not under /web/
WEB = web.AppKey("talk_files", StaticFiles)
CA_FILE_NAME = "pplex-desktop-ca.crt"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def content_security_policy(request: web.Request) -> str:
    # 'self' covers ws(s) to the same host only in CSP level 3 browsers; older Safari needs the
    # socket's own origin spelled out. A Host header that is not a plain host:port is not
    # echoed into a header.
    sockets = "'self'"
    if _HOST.match(request.host):
        sockets += f" {'wss' if request.secure else 'ws'}://{request.host}"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {sockets}",
            # The model's voice plays from a MediaStream (srcObject), which no fetch
            # directive governs: the page loads no media by URL.
            "media-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def install(app: web.Application, root: Traversable = WEB_FILES) -> None:
    """Read the talk page's files now and serve them; a file changed later is not seen."""
    app[WEB] = StaticFiles(root, {PAGE: "text/html", **ASSETS})
    app.add_routes(routes)


def _page_headers(request: web.Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request),
        # The URLs carry no version: the browser asks each time, and the ETag makes the
        # answer to an unchanged file a body-less 304.
        "Cache-Control": "no-cache",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def _file(name: str, request: web.Request) -> web.Response:
    file = request.app[WEB].get(name)
    if file is None:
        return json_error(404, "not_found", f"There is no file {request.path} on this gateway.")
    headers = {**_page_headers(request), "ETag": file.etag}
    if not_modified(request.headers.get("If-None-Match"), file.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=file.body, content_type=file.content_type, charset="utf-8", headers=headers
    )


@routes.get("/")
@public
async def page(request: web.Request) -> web.Response:
    return _file(PAGE, request)


@routes.get("/web/personas.json")
@public
async def personas(request: web.Request) -> web.Response:
    body = {
        "presets": [{"title": p.title, "text": p.text} for p in PRESETS],
        "default": request.app[CTX].settings.default_persona,
    }
    return json_response(body, headers=_page_headers(request))


@routes.get("/web/{name}")
@public
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:  # the page itself has one address, "/"
        return json_error(404, "not_found", f"There is no file {request.path} on this gateway.")
    return _file(name, request)


@routes.get("/ca.crt")
@public
async def ca_certificate(request: web.Request) -> web.Response:
    tls = request.app.get(LAN_TLS)
    if tls is None or tls.ca_der is None:
        return json_error(
            404,
            "no_local_ca",
            "This gateway has no certificate authority of its own to download: it serves the "
            "network with a certificate you supplied, or not over HTTPS at all.",
        )
    return web.Response(
        body=tls.ca_der,
        content_type="application/x-x509-ca-cert",
        headers={
            "Content-Disposition": f'attachment; filename="{CA_FILE_NAME}"',
            "Cache-Control": "no-cache",
        },
    )


@routes.get("/v1/stream/check")
async def stream_check(request: web.Request) -> web.Response:
    """Run the checks a /ws/stream upgrade would run, without queueing or connecting."""
    ctx = request.app[CTX]
    params = parse_session_params(request.query, ctx.settings, ctx.backends.voices())
    parse_format(request.query)
    ctx.scheduler.check_admission(params.voice)
    ctx.sessions.check_room(request[API_KEY])
    return json_response(
        {"ok": True, "voice": params.voice.rsplit(".", 1)[0], "queued": ctx.sessions.queued_count}
    )
