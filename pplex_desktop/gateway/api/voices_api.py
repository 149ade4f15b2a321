"""Storing and removing custom voices: /admin/voices for the admin, /v1/voices for keys that
hold the voices permission (off by default; set with PATCH /admin/keys/{id}).

An upload is a multipart form: ``audio`` (the recording), ``name`` and ``consent``. It is
spooled to a private temp folder with a size cap, checked and prepared off the event loop
(moshi/voice_check.py), then stored atomically in every backend voice folder this gateway can
write (gateway/voice_library.py).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from pplex_desktop.core.errors import ForbiddenError, NotFoundError, PplexError, ValidationError
from pplex_desktop.core.fs import fsync_file
from pplex_desktop.core.voices import new_voice_file_name
from pplex_desktop.gateway.api.voice_library import CONSENT_STATEMENT, ConsentRecord
from pplex_desktop.gateway.context import API_KEY, CTX, GatewayContext
from pplex_desktop.gateway.edge.access import admin_only
from pplex_desktop.gateway.events import VoicesChanged
from pplex_desktop.gateway.jsonout import json_response
from pplex_desktop.gateway.offline.uploads import ClientGoneError, receive_upload
from pplex_desktop.gateway.pool.backends import Backend
from pplex_desktop.moshi.voice_check import VoiceReport, prepare_voice

routes = web.RouteTableDef()
# 30 s of 96 kHz stereo 32-bit float is 23 MB; anything bigger is not a voice prompt.
MAX_VOICE_UPLOAD_BYTES = 25 * 1024 * 1024
TEXT_FIELDS = frozenset({"name", "consent"})


class ConflictError(PplexError):
    code = "voice_exists"
    status = 409


@dataclass(frozen=True, slots=True)
class StoredVoice:
    file_name: str
    report: VoiceReport
    consent: ConsentRecord


@dataclass(frozen=True, slots=True)
class VoiceFolder:
    backend: str  # the backend's label
    writable: bool
    reason: str | None  # why voices cannot be stored there, as a sentence
    voices: tuple[str, ...]
    records: tuple[dict[str, Any] | None, ...]  # the consent record of each voice, if any


def consent_given(value: str | None) -> bool:
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
    # Case-insensitive: on macOS and Windows Grandpa.wav would overwrite grandpa.wav.
    if file_name.lower() in {v.lower() for v in voices}:
        raise ConflictError(
            f"A voice named {file_name!r} exists already; remove it first or choose another name."
        )
    if (file_name.removesuffix(".wav") + ".pt").lower() in {v.lower() for v in voices}:
        raise ConflictError(
            f"{file_name.removesuffix('.wav')!r} is the name of a built-in voice; choose another."
        )
    return file_name


def _store_everywhere(
    targets: list[Backend], source: Path, spool: Path, file_name: str, consent: ConsentRecord
) -> VoiceReport:
    prepared = spool / "prepared.wav"
    report = prepare_voice(source, prepared)
    for backend in targets:
        assert backend.library is not None
        temp = backend.library.new_temp()
        try:
            shutil.copyfile(prepared, temp)
            fsync_file(temp)
            backend.library.store(temp, file_name, consent)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return report


def _no_folder() -> ForbiddenError:
    return ForbiddenError(
        "No model server behind this gateway has a voice folder it can write; set "
        "voice_dir for a backend (pplex-gateway --voice-dir) to store custom voices.",
        code="no_voice_folder",
    )


def _consent_refused() -> ValidationError:
    return ValidationError(
        "A voice can be stored only with consent: send the form field consent=true "
        f"(or the statement itself) to confirm: {CONSENT_STATEMENT}",
        code="consent_required",
    )


async def add_voice(
    ctx: GatewayContext,
    source: Path,
    name: str | None,
    *,
    consent: bool,
    by: str,
    key_id: int | None,
) -> StoredVoice:
    """Check ``source``, prepare it and store it as a custom voice on every backend whose
    voice folder this gateway can write. The heavy work runs in a worker thread."""
    if not consent:
        raise _consent_refused()
    targets = await asyncio.to_thread(_writable, ctx)
    if not targets:
        raise _no_folder()
    async with ctx.backends.voices_lock:
        file_name = _check_name(ctx, name)
        record = ConsentRecord(CONSENT_STATEMENT, by, key_id, ctx.clock.wall())
        spool = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="pplex-voice-"))
        try:
            report = await asyncio.to_thread(
                _store_everywhere, targets, source, spool, file_name, record
            )
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, spool, True))
        for backend in targets:
            if file_name not in backend.custom_voices:
                backend.custom_voices = (*backend.custom_voices, file_name)
        ctx.events.emit(VoicesChanged(ctx.backends.voices()))
    return StoredVoice(file_name, report, record)


async def remove_voice(ctx: GatewayContext, name: str) -> bool:
    """Remove the custom voice ``name`` from every writable folder; False if none had it."""
    file_name = new_voice_file_name(name)
    async with ctx.backends.voices_lock:
        return await _remove_locked(ctx, file_name)


async def _remove_locked(ctx: GatewayContext, file_name: str) -> bool:
    removed = False
    for backend in ctx.backends.backends:
        library = backend.library
        if library is None or file_name not in backend.custom_voices:
            continue
        if await asyncio.to_thread(library.problem) is not None:
            continue
        removed = await asyncio.to_thread(library.delete, file_name) or removed
        backend.custom_voices = tuple(v for v in backend.custom_voices if v != file_name)
    if removed:
        ctx.events.emit(VoicesChanged(ctx.backends.voices()))
    return removed


def libraries(ctx: GatewayContext) -> list[VoiceFolder]:
    """Per backend: its voice folder's state and the custom voices in it with their records."""
    out = []
    for backend in ctx.backends.backends:
        library = backend.library
        if library is None:
            problem: str | None = "No voice folder is set for this model server."
        else:
            problem = library.problem()
        voices = backend.custom_voices
        records = tuple(library.record(v) if library else None for v in voices)
        out.append(VoiceFolder(backend.config.label, problem is None, problem, voices, records))
    return out


async def _upload(request: web.Request, by: str, key_id: int | None) -> web.Response:
    ctx = request.app[CTX]
    if not await asyncio.to_thread(_writable, ctx):
        raise _no_folder()  # before the body is read: nothing could store it
    spool = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="pplex-voice-in-"))
    try:
        try:
            upload = await receive_upload(
                request,
                spool,
                max_bytes=MAX_VOICE_UPLOAD_BYTES,
                text_fields=TEXT_FIELDS,
                idle_timeout_s=ctx.settings.upload_idle_timeout_s,
            )
        except ClientGoneError:
            return web.Response(status=499)
        stored = await add_voice(
            ctx,
            upload.path,
            upload.fields.get("name"),
            consent=consent_given(upload.fields.get("consent")),
            by=by,
            key_id=key_id,
        )
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, spool, True))
    body = {
        "voice": stored.file_name,
        "id": stored.file_name,
        "custom": True,
        "seconds": round(stored.report.seconds, 2),
        "source": {
            "sample_rate": stored.report.source_rate,
            "channels": stored.report.source_channels,
        },
        "consent": stored.consent.to_json(),
    }
    return json_response(body, status=201)


async def _delete(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not await remove_voice(request.app[CTX], name):
        raise NotFoundError(
            f"There is no custom voice named {new_voice_file_name(name)!r}.",
            code="voice_not_found",
        )
    return json_response({"voice": new_voice_file_name(name), "removed": True})


def _need_permission(request: web.Request) -> tuple[str, int]:
    record = request[API_KEY]
    if not record.can_manage_voices:
        raise ForbiddenError(
            "This key may not store or remove voices; an administrator can grant it the "
            "voices permission.",
            code="voices_permission_required",
        )
    return record.name, record.id


@routes.get("/admin/voices")
@admin_only
async def admin_list(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    listing = [
        {
            "backend": f.backend,
            "writable": f.writable,
            "reason": f.reason,
            "voices": [
                {"voice": v, "consent": (r or {}).get("consent")}
                for v, r in zip(f.voices, f.records, strict=True)
            ],
        }
        for f in await asyncio.to_thread(libraries, ctx)
    ]
    return json_response({"backends": listing, "consent_statement": CONSENT_STATEMENT})


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
