"""A client of the app's gateway, as a script would be: urllib, loopback, no proxy."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    ca_file: Path | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """Status and body (JSON when it is JSON, else text); HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    opener = _OPENER
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    try:
        with opener.open(req, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, body.decode(errors="replace")


def admin(url: str, secret: str, path: str = "/admin/keys") -> tuple[int, Any]:
    return request(url + path, headers={"X-Admin-Secret": secret})
