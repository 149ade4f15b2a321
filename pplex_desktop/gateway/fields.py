"""Reading request bodies that may come as JSON or as a form, with clear errors."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from pplex_desktop.core.errors import ValidationError

MAX_SMALL_BODY = 64 * 1024


async def read_fields(request: web.Request) -> dict[str, Any]:
    """A JSON object or form fields (strings) from a small request body."""
    if request.content_length is not None and request.content_length > MAX_SMALL_BODY:
        raise ValidationError("The request body is too large for this endpoint.")
    if not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        try:
            data = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"The JSON body cannot be read: {exc}.") from None
        if not isinstance(data, dict):
            raise ValidationError("The JSON body must be an object.")
        return data
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raise ValidationError(
        f"Send the fields as JSON or as a form, not as {request.content_type}.",
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
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValidationError(f"{name} must be a whole number, not {str(value)[:20]!r}.")


def optional_float(fields: dict[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a number.")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, not {str(value)[:20]!r}.") from None
    if not math.isfinite(result):
        raise ValidationError(f"{name} must be a finite number.")
    return result


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not raw.isdigit():
        raise ValidationError(f"{raw[:20]!r} is not an id; ids are whole numbers.")
    return int(raw)
