"""The two live endpoints: /api/chat (native protocol, bytes untouched) and /ws/stream (PCM)."""

from __future__ import annotations

from aiohttp import web

from pplex_desktop.core.errors import PplexError
from pplex_desktop.gateway.context import API_KEY, CTX
from pplex_desktop.gateway.edge.proxies import client_address
from pplex_desktop.gateway.live.chat import NativeRelay
from pplex_desktop.gateway.live.params import parse_session_params
from pplex_desktop.gateway.live.relay import Relay, make_client_socket
from pplex_desktop.gateway.live.stream import PcmRelay, parse_format

routes = web.RouteTableDef()


async def _serve(request: web.Request, relay_class: type[Relay]) -> web.StreamResponse:
    ctx = request.app[CTX]
    record = request[API_KEY]
    params = parse_session_params(request.query, ctx.settings, ctx.backends.voices())
    extra = {"pcm_format": parse_format(request.query)} if relay_class is PcmRelay else {}
    ws = make_client_socket(request, ctx)
    if not ws.can_prepare(request).ok:
        raise PplexError(
            f"{request.path} speaks WebSocket; connect with a WebSocket client (ws:// or wss://).",
            code="websocket_required",
            status=426,
        )
    ctx.scheduler.check_admission(params.voice)
    session = ctx.sessions.reserve(record, client_address(request), relay_class.route)
    try:
        await ws.prepare(request)
        relay = relay_class(request, ctx, params, session, ws, **extra)
        await relay.run()
    finally:
        ctx.sessions.remove(session)
    return ws


@routes.get("/api/chat")
async def chat(request: web.Request) -> web.StreamResponse:
    return await _serve(request, NativeRelay)


@routes.get("/ws/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    return await _serve(request, PcmRelay)
