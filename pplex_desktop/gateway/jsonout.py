"""JSON answers that are always valid JSON.

Python's json writes NaN and Infinity by default, which no JSON parser (a browser's included)
accepts; a value like that must fail loudly here rather than break every client that reads it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

dumps = functools.partial(json.dumps, allow_nan=False)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)
