"""Storing and removing custom voices: /admin/voices for the admin, /v1/voices for keys that
hold the voices permission (off by default; set with PATCH /admin/keys/{id}).

An upload is a multipart form: ``audio`` (the recording), ``name`` and ``consent``. It is
spooled to a private temp folder with a size cap, checked and prepared off the event loop
(moshi/voice_check.py), then stored atomically in every backend voice folder this gateway can
write (gateway/voice_library.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from pplex_desktop.core.errors import ForbiddenError, NotFoundError, PplexError, ValidationError
from pplex_desktop.core.voices import new_voice_file_name
from pplex_desktop.gateway.access import admin_only
from pplex_desktop.gateway.backends import Backend
from pplex_desktop.gateway.context import API_KEY, CTX, GatewayContext
from pplex_desktop.gateway.uploads import ClientGoneError, receive_upload
from pplex_desktop.gateway.voice_library import CONSENT_STATEMENT, ConsentRecord
from pplex_desktop.moshi.voice_check import VoiceReport, prepare_voice

routes = web.RouteTableDef()
# 30 s of 96 kHz stereo 32-bit float is 23 MB; anything bigger is not a voice prompt.
MAX_VOICE_UPLOAD_BYTES = 25 * 1024 * 1024
TEXT_FIELDS = frozenset({"name", "consent"})


class ConflictError(PplexError):
    code = "voice_exists"
    status = 409


def _consent_given(value: str | None) -> bool:
    if value is None:
        return False
    text = " ".join(value.split())
    return text.lower() == "true" or text == CONSENT_STATEMENT


def _writable(ctx: GatewayContext) -> list[Backend]:
    return [b for b in ctx.backends.backends if b.library and b.library.problem() is None]


def _check_name(ctx: GatewayContext, name: str | None) -> str:
    if not name:
        raise ValidationError("Give the voice a name (the form field 'name').", code="missing_name")
    file_name = new_voice_file_name(name)
    voices = ctx.backends.voices()
    if file_name in voices:
        raise ConflictError(
            f"A voice named {file_name!r} exists already; remove it first or choose another name."
        )
    if file_name.removesuffix(".wav") + ".pt" in voices:
        raise ConflictError(
            f"{file_name.removesuffix('.wav')!r} is the name of a built-in voice; choose another."
        )
    return file_name


def _store_everywhere(
    ctx: GatewayContext, source: Path, spool: Path, file_name: str, consent: ConsentRecord
) -> VoiceReport:
    prepared = spool / "prepared.wav"
    report = prepare_voice(source, prepared)
    for backend in _writable(ctx):
        assert backend.library is not None
        temp = backend.library.new_temp()
        try:
            shutil.copyfile(prepared, temp)
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            backend.library.store(temp, file_name, consent)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return report


async def _upload(request: web.Request, by: str, key_id: int | None) -> web.Response:
    ctx = request.app[CTX]
    if not _writable(ctx):
        raise ForbiddenError(
            "No model server behind this gateway has a voice folder it can write; set "
            "voice_dir for a backend (pplex-gateway --voice-dir) to store custom voices.",
            code="no_voice_folder",
        )
    spool = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="pplex-voice-"))
    try:
        try:
            upload = await receive_upload(
                request, spool / "in", max_bytes=MAX_VOICE_UPLOAD_BYTES, text_fields=TEXT_FIELDS
            )
        except ClientGoneError:
            return web.Response(status=499)
        if not _consent_given(upload.fields.get("consent")):
            raise ValidationError(
                "A voice can be stored only with consent: send the form field consent=true "
                f"(or the statement itself) to confirm: {CONSENT_STATEMENT}",
                code="consent_required",
            )
        file_name = _check_name(ctx, upload.fields.get("name"))
        consent = ConsentRecord(CONSENT_STATEMENT, by, key_id, ctx.clock.wall())
        report = await asyncio.to_thread(
            _store_everywhere, ctx, upload.path, spool, file_name, consent
        )
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, spool, True))
    for backend in _writable(ctx):
        if file_name not in backend.custom_voices:
            backend.custom_voices = (*backend.custom_voices, file_name)
    body = {
        "voice": file_name,
        "id": file_name,
        "custom": True,
        "seconds": round(report.seconds, 2),
        "source": {"sample_rate": report.source_rate, "channels": report.source_channels},
        "consent": consent.to_json(),
    }
    return web.json_response(body, status=201)


async def _delete(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    file_name = new_voice_file_name(request.match_info["name"])
    removed = False
    for backend in ctx.backends.backends:
        if backend.library is None or file_name not in backend.custom_voices:
            continue
        if backend.library.problem() is not None:
            continue
        removed = await asyncio.to_thread(backend.library.delete, file_name) or removed
        backend.custom_voices = tuple(v for v in backend.custom_voices if v != file_name)
    if not removed:
        raise NotFoundError(
            f"There is no custom voice named {file_name!r}.", code="voice_not_found"
        )
    return web.json_response({"voice": file_name, "removed": True})


def _need_permission(request: web.Request) -> tuple[str, int]:
    record = request[API_KEY]
    if not record.can_manage_voices:
        raise ForbiddenError(
            "This key may not store or remove voices; an administrator can grant it the "
            "voices permission.",
            code="voices_permission_required",
        )
    return record.name, record.id


def library_listing(ctx: GatewayContext) -> list[dict[str, Any]]:
    """Per backend: its voice folder's state and the custom voices in it with their records."""
    out = []
    for backend in ctx.backends.backends:
        library = backend.library
        problem = (
            "No voice folder is set for this model server."
            if library is None
            else library.problem()
        )
        voices = [
            {
                "voice": v,
                "consent": (library.record(v) or {}).get("consent") if library else None,
            }
            for v in backend.custom_voices
        ]
        out.append(
            {
                "backend": backend.config.label,
                "writable": problem is None,
                "reason": problem,
                "voices": voices,
            }
        )
    return out


@routes.get("/admin/voices")
@admin_only
async def admin_list(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    listing = await asyncio.to_thread(library_listing, ctx)
    return web.json_response({"backends": listing, "consent_statement": CONSENT_STATEMENT})


@routes.post("/admin/voices")
@admin_only
async def admin_upload(request: web.Request) -> web.Response:
    return await _upload(request, "admin", None)


@routes.delete("/admin/voices/{name}")
@admin_only
async def admin_delete(request: web.Request) -> web.Response:
    return await _delete(request)


@routes.post("/v1/voices")
async def key_upload(request: web.Request) -> web.Response:
    by, key_id = _need_permission(request)
    return await _upload(request, by, key_id)


@routes.delete("/v1/voices/{name}")
async def key_delete(request: web.Request) -> web.Response:
    _need_permission(request)
    return await _delete(request)
