"""Import of the original gateway's api_keys.json (its three shapes), stored as digests."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.keystore import (
    KIND_LEGACY,
    KIND_USER,
    KeyStore,
    RefusedKeyError,
    key_strength_bits,
)


@pytest.mark.parametrize(
    "content",
    [
        {"sk-aaaaaaaaaaaa": {"name": "one", "created_at": 1.0}, "sk-bbbbbbbbbbbb": "two"},
        [{"key": "sk-aaaaaaaaaaaa", "name": "one"}, {"key": "sk-bbbbbbbbbbbb", "name": "two"}],
        {"keys": [{"api_key": "sk-aaaaaaaaaaaa", "name": "one"}, {"key": "sk-bbbbbbbbbbbb"}]},
    ],
)
def test_legacy_import_formats(key_store: KeyStore, tmp_path: Path, content: object) -> None:
    path = tmp_path / "api_keys.json"
    path.write_text(json.dumps(content))
    result = key_store.import_legacy_json(path)
    assert (result.imported, result.skipped) == (2, 0)
    assert key_store.authenticate("sk-aaaaaaaaaaaa").name == "one"
    assert key_store.authenticate("sk-bbbbbbbbbbbb").kind == KIND_LEGACY
    assert key_store.import_legacy_json(path).skipped == 2
    assert b"sk-aaaaaaaaaaaa" not in (tmp_path / "keys.sqlite3").read_bytes()


def test_legacy_import_rejects_unknown_shapes(key_store: KeyStore, tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValidationError, match=r"not in a known api_keys\.json format"):
        key_store.import_legacy_json(path)
    path.write_text("{broken")
    with pytest.raises(ValidationError, match="cannot be read as JSON"):
        key_store.import_legacy_json(path)


def test_weak_legacy_keys_are_named_in_a_warning(
    key_store: KeyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    strong = "Q7v" * 12
    path = tmp_path / "api_keys.json"
    path.write_text(json.dumps({"abc123": "kiosk", strong: {"name": "server", "active": False}}))
    with caplog.at_level(logging.WARNING):
        result = key_store.import_legacy_json(path)
    assert result.weak == ("kiosk",)
    assert key_strength_bits("abc123") < 80 <= key_strength_bits(strong)
    assert "1 imported legacy key(s) are short or easy to guess ('kiosk')" in caplog.text
    assert "abc123" not in caplog.text
    with pytest.raises(RefusedKeyError, match="revoked"):
        key_store.authenticate(strong)


def test_an_imported_key_in_this_format_is_a_user_key(key_store: KeyStore, tmp_path: Path) -> None:
    made = key_store.create("to export")
    key_store.delete(made.record.id)
    path = tmp_path / "api_keys.json"
    path.write_text(json.dumps([{"key": made.key, "name": "back", "rpm": 7}]))
    key_store.import_legacy_json(path)
    record = key_store.authenticate(made.key)
    assert (record.kind, record.rpm, record.prefix) == (KIND_USER, 7, made.record.prefix)
