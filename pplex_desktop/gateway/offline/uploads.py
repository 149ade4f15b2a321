"""Receiving a multipart upload: the file streamed to a spool folder, the text fields kept.

The body is never held whole in memory (``request.post()`` would): the ``audio`` part is
written to disk as it arrives and the size limit is enforced while it streams.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from pplex_desktop.core.errors import (
    PayloadTooLargeError,
    UnsupportedMediaError,
    ValidationError,
)
from pplex_desktop.gateway.edge.bodyread import body_deadline, malformed_body

AUDIO_FIELD = "audio"
CHUNK_BYTES = 256 * 1024
WRITE_BATCH_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
FORM_OVERHEAD_BYTES = 1024 * 1024  # boundaries, part headers and the text fields
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


class ClientGoneError(Exception):
    """The client disconnected before its upload was complete."""


@dataclass(frozen=True, slots=True)
class Upload:
    path: Path  # the spooled audio file
    filename: str  # the caller's file name, made safe
    size: int
    fields: dict[str, str]


def safe_filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")[:100]
    return cleaned or "upload"


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The upload is larger than this gateway accepts ({limit / 1024**2:g} MB); send a "
        "shorter or compressed (FLAC, OGG) file."
    )


async def _read_field(part: BodyPartReader, name: str, progress: Callable[[], None]) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(8192):
        progress()
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise ValidationError(
                f"The form field '{name}' is longer than {MAX_FIELD_BYTES // 1024} KB.",
                code="field_too_long",
            )
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            f"The form field '{name}' is not UTF-8 text.", code="invalid_field"
        ) from None


async def _spool(
    part: BodyPartReader, handle: BinaryIO, limit: int, progress: Callable[[], None]
) -> int:
    loop = asyncio.get_running_loop()
    size = 0
    batch = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        progress()
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        batch.extend(chunk)
        if len(batch) >= WRITE_BATCH_BYTES:
            await loop.run_in_executor(None, handle.write, bytes(batch))
            batch.clear()
    if batch:
        await loop.run_in_executor(None, handle.write, bytes(batch))
    return size


async def _parts(
    request: web.Request,
    folder: Path,
    limit: int,
    text_fields: frozenset[str],
    progress: Callable[[], None],
) -> Upload:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    upload: Upload | None = None
    while True:
        part = await reader.next()
        progress()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise ValidationError("Nested multipart bodies are not accepted.")
        name = part.name or ""
        if name == AUDIO_FIELD:
            if upload is not None:
                raise ValidationError("Send exactly one 'audio' file, not several.")
            filename = safe_filename(part.filename)
            path = folder / filename
            handle = await asyncio.to_thread(path.open, "wb")
            try:
                size = await _spool(part, handle, limit, progress)
            finally:
                await asyncio.to_thread(handle.close)
            upload = Upload(path, filename, size, fields)
        elif name in text_fields:
            if name in fields:
                raise ValidationError(f"The form field '{name}' was sent twice.")
            fields[name] = await _read_field(part, name, progress)
        else:
            accepted = ", ".join(sorted({AUDIO_FIELD, *text_fields}))
            raise ValidationError(
                f"The form field '{name[:40]}' is not known; the accepted fields are {accepted}.",
                code="unknown_field",
            )
        if request.content.total_bytes > limit + FORM_OVERHEAD_BYTES:
            raise _too_large(limit)
    if upload is None:
        raise ValidationError(
            "The form has no 'audio' file; send one, e.g. curl -F audio=@input.wav.",
            code="missing_audio",
        )
    return upload


async def receive_upload(
    request: web.Request,
    folder: Path,
    *,
    max_bytes: int,
    text_fields: frozenset[str],
    idle_timeout_s: float,
) -> Upload:
    """Stream a multipart/form-data body into ``folder``; raise a 4xx for anything wrong.

    A body that stops arriving for ``idle_timeout_s`` gets a 408 (BodyTimeoutError).
    """
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaError(
            f"Send the audio as multipart/form-data with an 'audio' file field (curl -F "
            f"audio=@input.wav), not as {request.content_type[:60] or 'a body without a type'}.",
        )
    declared = request.content_length
    if declared is not None and declared > max_bytes + FORM_OVERHEAD_BYTES:
        raise _too_large(max_bytes)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    try:
        async with body_deadline(idle_timeout_s) as progress:
            return await _parts(request, folder, max_bytes, text_fields, progress)
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_bytes) from None
    except ConnectionResetError:
        raise ClientGoneError from None
    except RequestPayloadError:
        raise malformed_body(request) from None
    except (ValueError, HttpProcessingError, RuntimeError, LookupError) as exc:
        # aiohttp's multipart parser reports a malformed body with these.
        raise ValidationError(
            f"The multipart form cannot be read: {str(exc)[:120] or type(exc).__name__}.",
            code="malformed_form",
        ) from None
