"""A client of the app's gateway, as a script would be: urllib, loopback, no proxy."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
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


def https_via_loopback(
    url: str, *, ca_file: Path, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    """GET a LAN URL as a phone would see it (its Host, its certificate check for that name),
    but over 127.0.0.1: tests send traffic to loopback only, never to an interface address."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    context = ssl.create_default_context(cafile=str(ca_file))
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host

    class _Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection(("127.0.0.1", parts.port or 443), timeout)
            self.sock = context.wrap_socket(raw, server_hostname=host)

    connection = _Connection(host, parts.port, timeout=timeout, context=context)
    try:
        connection.request(
            "GET", parts.path or "/", headers={"Host": f"{shown}:{parts.port}", **(headers or {})}
        )
        response = connection.getresponse()
        status, body = response.status, response.read()
    finally:
        connection.close()
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, body.decode(errors="replace")
