"""Pairing: a short-lived paired key, handed over in the URL fragment, listed and revocable."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import segno

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.errors import AuthError, ValidationError
from pplex_desktop.core.keystore import KIND_PAIRED, KeyStore
from pplex_desktop.gateway.lan.pairing import make_pairing, pairing_url, qr_png, qr_svg


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    keystore = KeyStore(tmp_path / "keys.sqlite3", clock=FakeClock())
    yield keystore
    keystore.close()


def test_pairing_makes_a_short_lived_paired_key_in_the_fragment(store: KeyStore) -> None:
    pairing = make_pairing(
        store,
        base_url="https://192.168.1.20:8443",
        name="Kitchen phone",
        rpm=30,
        max_sessions=1,
        ttl_s=3600,
    )
    parts = urlsplit(pairing.url)
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == (
        "https",
        "192.168.1.20:8443",
        "/",
        "",
    )
    assert parts.fragment == f"key={pairing.key}"
    assert unquote(parts.fragment.removeprefix("key=")) == pairing.key
    record = store.authenticate(pairing.key)
    assert record.id == pairing.key_id
    assert (record.kind, record.name, record.rpm, record.max_sessions) == (
        KIND_PAIRED,
        "Kitchen phone",
        30,
        1,
    )
    assert pairing.expires_at == pytest.approx(store.clock.wall() + 3600)
    assert record.expires_at == pairing.expires_at
    assert [k.id for k in store.list_keys(kinds=frozenset({KIND_PAIRED}))] == [pairing.key_id]


def test_a_paired_key_expires_and_can_be_revoked(store: KeyStore) -> None:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    short = make_pairing(store, base_url="https://h:8443", ttl_s=60)
    other = make_pairing(store, base_url="https://h:8443", ttl_s=3600)
    clock.advance(61)
    with pytest.raises(AuthError, match="has expired"):
        store.authenticate(short.key)
    store.authenticate(other.key)
    store.revoke(other.key_id)
    with pytest.raises(AuthError, match="has been revoked"):
        store.authenticate(other.key)


@pytest.mark.parametrize(
    "base", ["ftp://h", "https://h:8443/?x=1", "https://h/#key=old", "https://u:p@h", "h:8443"]
)
def test_bad_base_urls_are_refused_before_a_key_exists(store: KeyStore, base: str) -> None:
    with pytest.raises(ValidationError):
        make_pairing(store, base_url=base)
    assert store.list_keys() == []


def test_ttl_bounds(store: KeyStore) -> None:
    for ttl in (10, 400 * 86400):
        with pytest.raises(ValidationError, match="between one minute and 90 days"):
            make_pairing(store, base_url="https://h", ttl_s=ttl)


def test_the_page_path_is_kept() -> None:
    assert pairing_url("https://h:8443/talk", "pplx_x") == "https://h:8443/talk/#key=pplx_x"


def test_qr_codes_encode_the_url() -> None:
    url = "https://192.168.1.20:8443/#key=pplx_" + "A" * 46
    png = qr_png(url, scale=4)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    modules = len(segno.make(url, error="m", micro=False).matrix)
    assert width == height == (modules + 8) * 4  # the four-module quiet zone on both sides
    svg = qr_svg(url)
    assert svg.startswith(b"<svg") and b"</svg>" in svg
