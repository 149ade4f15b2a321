"""Pairing a phone or laptop: a short-lived key inside the talk page's URL, and its QR code.

The key rides in the URL *fragment* (``#key=...``): browsers never send fragments to the
server, so it cannot land in an access log or a proxy's log. The page stores it and removes it
from the address bar. A paired key is an ordinary key of kind ``paired``: it is listed, limited
and revoked like any other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import segno

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.keystore import KIND_PAIRED, KeyStore

DEFAULT_TTL_S = 12 * 3600.0  # an evening of use; pair again the next day
MAX_TTL_S = 90 * 86400.0


@dataclass(frozen=True, slots=True)
class Pairing:
    key: str  # shown only inside the URL/QR code; never stored in plain text
    url: str
    expires_at: float
    key_id: int


def pairing_url(base_url: str, key: str) -> str:
    """``https://host:port/#key=...`` from the talk page's base URL."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"{base_url!r} is not the gateway's address; use one like https://192.168.1.20:8443.",
            code="invalid_base_url",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationError(
            "The gateway's address for pairing must not carry a query, fragment or password.",
            code="invalid_base_url",
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme}://{parts.netloc}{path}#key={quote(key, safe='')}"


def make_pairing(
    store: KeyStore,
    *,
    base_url: str,
    name: str = "Paired device",
    rpm: int | None = None,
    max_sessions: int | None = None,
    ttl_s: float = DEFAULT_TTL_S,
) -> Pairing:
    """Create a paired key that expires after ``ttl_s`` and the URL that hands it over."""
    if not 60 <= ttl_s <= MAX_TTL_S:
        raise ValidationError(
            "A pairing must last between one minute and 90 days.", code="invalid_expiry"
        )
    pairing_url(base_url, "check")  # refuse a bad address before a key exists
    new = store.create(
        name,
        rpm=rpm,
        max_sessions=max_sessions,
        expires_at=store.clock.wall() + ttl_s,
        kind=KIND_PAIRED,
    )
    assert new.record.expires_at is not None
    return Pairing(new.key, pairing_url(base_url, new.key), new.record.expires_at, new.record.id)


def qr_png(url: str, *, scale: int = 8) -> bytes:
    """A QR code as PNG bytes, dark on white with the quiet zone scanners need."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(url: str, *, scale: int = 8) -> bytes:
    """A QR code as SVG bytes (scales without blur on high-density screens)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        buffer, kind="svg", scale=scale, border=4, xmldecl=False
    )
    return buffer.getvalue()
