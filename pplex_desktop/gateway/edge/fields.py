"""Reading request bodies that may come as JSON or as a form, with clear errors."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.gateway.context import CTX
from pplex_desktop.gateway.edge.bodyread import body_deadline, malformed_body

MAX_SMALL_BODY = 64 * 1024
# SQLite integers are signed 64-bit; 18 digits always fit, and no id or count needs more.
MAX_DIGITS = 18
_WHOLE = re.compile(rf"[+-]?[0-9]{{1,{MAX_DIGITS}}}")
_ID = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


def _has_lone_surrogate(value: object) -> bool:
    """JSON may spell text (\\ud800) that is not Unicode; SQLite and UTF-8 cannot store it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


async def _body(request: web.Request) -> bytes:
    """The whole small body, or a 400 / 408 / 413 that says what was wrong with it."""
    data = bytearray()
    async with body_deadline(request.app[CTX].settings.upload_idle_timeout_s) as progress:
        try:
            while chunk := await request.content.readany():
                data += chunk
                if len(data) > MAX_SMALL_BODY:
                    raise ValidationError("The request body is too large for this endpoint.")
                progress()
        except RequestPayloadError:
            raise malformed_body(request) from None
    return bytes(data)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"The JSON body cannot be read: {exc}.") from None
    except UnicodeDecodeError:
        raise ValidationError("The JSON body is not UTF-8 text.") from None
    except RecursionError:
        raise ValidationError("The JSON body is nested too deeply.") from None
    except ValueError:  # an integer with more digits than Python converts
        raise ValidationError("The JSON body holds a number too long to read.") from None
    if not isinstance(data, dict):
        raise ValidationError("The JSON body must be an object.")
    if _has_lone_surrogate(data):
        raise ValidationError(
            "The JSON body holds text that is not valid Unicode (an unpaired \\ud800-\\udfff "
            "escape).",
            code="invalid_text",
        )
    return data


async def read_fields(request: web.Request) -> dict[str, Any]:
    """A JSON object or form fields (strings) from a small request body."""
    if request.content_length is not None and request.content_length > MAX_SMALL_BODY:
        raise ValidationError("The request body is too large for this endpoint.")
    if not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        return _json_object(await _body(request))
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            # No read loop to watch here: the deadline bounds the whole (small) body.
            async with body_deadline(request.app[CTX].settings.upload_idle_timeout_s):
                form = await request.post()
        except RequestPayloadError:
            raise malformed_body(request) from None
        except ValueError as exc:
            raise ValidationError(
                f"The form cannot be read ({type(exc).__name__}).", code="malformed_form"
            ) from None
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if _has_lone_surrogate(fields):
            raise ValidationError(
                "The form holds text that is not valid Unicode.", code="invalid_text"
            )
        return fields
    raise ValidationError(
        f"Send the fields as JSON or as a form, not as {request.content_type[:60]}.",
        code="unsupported_media_type",
        status=415,
    )


def optional_int(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a whole number.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    raise ValidationError(
        f"{name} must be a whole number of at most {MAX_DIGITS} digits, not {str(value)[:20]!r}."
    )


def optional_float(fields: dict[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a number.")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"{name} must be a number, not {str(value)[:20]!r}.") from None
    if not math.isfinite(result):
        raise ValidationError(f"{name} must be a finite number.")
    return result


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not _ID.fullmatch(raw):
        raise ValidationError(
            f"{raw[:20]!r} is not an id; ids are whole numbers of at most {MAX_DIGITS} digits."
        )
    return int(raw)
