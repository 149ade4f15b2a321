"""Host names as the gateway compares them: lower case, no trailing dot, IPs in canonical form."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# Letters, digits, '-' and '_' in dot-separated labels (underscores: some LAN names have them).
_NAME = re.compile(
    r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*"
)
MAX_NAME = 253


def normalize_name(name: str) -> str | None:
    """A bare host name or IP address (IPv6 with or without brackets), or None if it is none."""
    text = name.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    text = text.removesuffix(".")
    if not text or len(text) > MAX_NAME or not _NAME.fullmatch(text):
        return None
    return text


def split_host_header(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` from a Host header (``name``, ``name:port``, ``[v6]:port``); None if bad."""
    text = value.strip()
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[: end + 1], text[end + 1 :]
        if ":" not in name[1:-1]:
            return None  # brackets are for IPv6 only
    else:
        name, colon, digits = text.partition(":")
        rest = colon + digits
    if rest:
        digits = rest[1:]
        if not rest.startswith(":") or not digits.isdigit() or len(digits) > 5:
            return None
        port = int(digits)
        if not 0 < port <= 65535:
            return None
    normal = normalize_name(name)
    return None if normal is None else (normal, port)


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]``, lower case, default port dropped; None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")
