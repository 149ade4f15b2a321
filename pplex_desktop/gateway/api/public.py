"""Endpoints for clients: health (no key), info and voices."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from pplex_desktop.core.voices import display_name, voice_entry
from pplex_desktop.gateway.context import API_KEY, CTX, GatewayContext
from pplex_desktop.gateway.edge.access import public
from pplex_desktop.gateway.jsonout import json_response
from pplex_desktop.gateway.live.params import MAX_PERSONA_ENCODED_BYTES

routes = web.RouteTableDef()
STARTED_AT = web.AppKey("pplex_started_at", float)


def public_name(ctx: GatewayContext, index: int) -> str:
    """A backend's configured name, never its address: clients have no business with it."""
    backends = ctx.backends.backends
    name = backends[index].config.name if index < len(backends) else ""
    return name or f"backend {index + 1}"


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    statuses = ctx.backends.statuses()
    reachable = sum(1 for s in statuses if s.healthy)
    return json_response(
        {
            "status": "ok" if reachable else "degraded",
            "version": ctx.version,
            "uptime_s": round(time.monotonic() - request.app[STARTED_AT], 1),
            "backends_reachable": reachable,
            "backends": [
                {"name": public_name(ctx, i), "reachable": s.healthy}
                for i, s in enumerate(statuses)
            ],
        }
    )


@routes.get("/v1/voices")
@public
async def voices(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    default = ctx.settings.default_voice
    return json_response(
        {
            "voices": [voice_entry(v) for v in ctx.backends.voices()],
            "default": display_name(default),
        }
    )


@routes.get("/v1/info")
async def info(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    record = request[API_KEY]
    s = ctx.settings
    budget = ctx.limiter.peek(record.id, record.rpm)
    body: dict[str, Any] = {
        "version": ctx.version,
        "key": {
            "name": record.name,
            "prefix": record.prefix,
            "rpm": record.rpm,
            "remaining_this_minute": budget.remaining,
            "max_sessions": record.max_sessions,
            "expires_at": record.expires_at,
        },
        "backends": [
            {
                "name": public_name(ctx, i),
                "reachable": st.healthy,
                "busy": st.busy,
                "voices": [display_name(v) for v in st.voices],
            }
            for i, st in enumerate(ctx.backends.statuses())
        ],
        "voices": [voice_entry(v) for v in ctx.backends.voices()],
        "defaults": {"persona": s.default_persona, "voice": display_name(s.default_voice)},
        "limits": {
            "max_upload_mb": s.max_upload_mb,
            "max_audio_s": s.max_audio_s,
            "max_session_s": s.max_session_s,
            "idle_timeout_s": s.idle_timeout_s,
            "max_prompt_chars": s.max_prompt_chars,
            "max_prompt_encoded_bytes": MAX_PERSONA_ENCODED_BYTES,
        },
    }
    return json_response(body)
