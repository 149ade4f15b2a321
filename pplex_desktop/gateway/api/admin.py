"""The admin API: manage keys and read usage. Every route needs the X-Admin-Secret header."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.errors import NotFoundError, ValidationError
from pplex_desktop.core.expiry import expiry_time
from pplex_desktop.core.keystore import UNSET, ApiKey, DailyUsage
from pplex_desktop.gateway.context import CTX
from pplex_desktop.gateway.edge.access import admin_only
from pplex_desktop.gateway.edge.fields import optional_float, optional_int, path_id, read_fields
from pplex_desktop.gateway.jsonout import json_response

routes = web.RouteTableDef()


def _public(request: web.Request, record: ApiKey) -> dict[str, Any]:
    return record.to_public(request.app[CTX].clock.wall())


def _expiry(request: web.Request, fields: dict[str, Any]) -> float | None:
    return expiry_time(
        request.app[CTX].clock.wall(),
        in_days=optional_float(fields, "expires_in_days"),
        at=optional_float(fields, "expires_at"),
    )


def _permission(fields: dict[str, Any]) -> bool:
    value = fields.get("can_manage_voices", False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"  # a form sends text
    if not isinstance(value, bool):
        raise ValidationError(
            "can_manage_voices must be true or false (JSON), the permission to store and "
            "remove custom voices.",
            code="invalid_permission",
        )
    return value


@routes.post("/admin/keys/generate")
@admin_only
async def generate_key(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    fields = await read_fields(request)
    made = await ctx.keystore.db.run(
        ctx.keystore.create,
        fields.get("name", ""),
        rpm=optional_int(fields, "rpm"),
        max_sessions=optional_int(fields, "max_sessions"),
        expires_at=_expiry(request, fields),
        can_manage_voices=_permission(fields),
    )
    body = _public(request, made.record)
    body["key"] = made.key
    body["notice"] = "Store this key now: it is shown only once and cannot be recovered."
    return json_response(body)


@routes.get("/admin/keys")
@admin_only
async def list_keys(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return json_response({"keys": [_public(request, k) for k in ctx.keystore.list_keys()]})


@routes.get("/admin/keys/{id}")
@admin_only
async def get_key(request: web.Request) -> web.Response:
    return json_response(_public(request, request.app[CTX].keystore.get(path_id(request))))


@routes.patch("/admin/keys/{id}")
@admin_only
async def update_key(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    key_id = path_id(request)
    fields = await read_fields(request)
    allowed = {"name", "rpm", "max_sessions", "expires_at", "expires_in_days", "can_manage_voices"}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValidationError(
            f"These fields cannot be changed: {', '.join(unknown)}; "
            f"use {', '.join(sorted(allowed))}."
        )
    expiry: Any = UNSET
    if "expires_at" in fields or "expires_in_days" in fields:
        expiry = _expiry(request, fields)
    rpm = optional_int(fields, "rpm")
    sessions = optional_int(fields, "max_sessions")
    record = await ctx.keystore.db.run(
        ctx.keystore.update,
        key_id,
        name=fields.get("name", UNSET),
        rpm=UNSET if rpm is None else rpm,
        max_sessions=UNSET if sessions is None else sessions,
        expires_at=expiry,
        can_manage_voices=_permission(fields) if "can_manage_voices" in fields else UNSET,
    )
    return json_response(_public(request, record))


@routes.post("/admin/keys/{id}/revoke")
@routes.delete("/admin/keys/{id}")
@admin_only
async def revoke_key(request: web.Request) -> web.Response:
    keystore = request.app[CTX].keystore
    record = await keystore.db.run(keystore.revoke, path_id(request))
    return json_response(_public(request, record))


@routes.get("/admin/keys/{id}/usage")
@admin_only
async def key_usage(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await ctx.keystore.db.run(ctx.keystore.flush_usage)
    record = ctx.keystore.get(path_id(request))
    days = [_day(d) for d in ctx.keystore.daily_usage(record.id)]
    return json_response({"key": _public(request, record), "daily": days})


def _day(d: DailyUsage) -> dict[str, Any]:
    return {
        "day": d.day,
        "requests": d.requests,
        "audio_in_s": round(d.audio_in_s, 3),
        "audio_out_s": round(d.audio_out_s, 3),
    }


@routes.get("/admin/usage")
@admin_only
async def usage(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await ctx.keystore.db.run(ctx.keystore.flush_usage)
    return json_response({"daily": [_day(d) for d in ctx.keystore.daily_usage()]})


@routes.get("/admin/activity")
@admin_only
async def activity(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    recent = list(ctx.events.recent_requests)[-200:]
    return json_response(
        {
            "requests": [
                {
                    "at": r.at,
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "duration_ms": round(r.duration_ms, 2),
                    "client": r.client,
                    "key_name": r.key_name,
                    "kind": r.kind,
                }
                for r in reversed(recent)
            ]
        }
    )


@routes.get("/admin/sessions")
@admin_only
async def sessions(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    listed = [s.to_public() for s in ctx.sessions.sessions.values()]
    return json_response(
        {
            "active": [s for s in listed if s["state"] != "queued"],
            "queued": sorted(
                (s for s in listed if s["state"] == "queued"),
                key=lambda s: s["queue_position"] or 0,
            ),
        }
    )


@routes.delete("/admin/sessions/{id}")
@admin_only
async def end_session(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    session_id = request.match_info["id"]
    if not ctx.sessions.end(session_id, CloseCode.POLICY, "An administrator ended this session."):
        raise NotFoundError(f"There is no live session with id {session_id[:20]!r}.")
    return json_response({"id": session_id, "ended": True})
