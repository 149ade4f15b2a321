from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.errors import AuthError, NotFoundError, ValidationError
from pplex_desktop.core.keystore import KIND_LEGACY, KeyState, KeyStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[KeyStore]:
    s = KeyStore(tmp_path / "keys.sqlite3", clock=clock)
    yield s
    s.close()


def test_only_digests_are_stored(store: KeyStore, tmp_path: Path) -> None:
    made = store.create("secretive")
    store.flush_usage()
    for path in tmp_path.iterdir():
        assert made.key.encode() not in path.read_bytes()
    row = (
        sqlite3.connect(tmp_path / "keys.sqlite3").execute("SELECT digest FROM api_keys").fetchone()
    )
    assert len(row[0]) == 64


def test_authenticate_each_state(store: KeyStore, clock: FakeClock) -> None:
    good = store.create("good")
    assert store.authenticate(good.key).name == "good"
    expiring = store.create("soon", expires_at=clock.wall() + 10)
    clock.advance(11)
    with pytest.raises(AuthError) as info:
        store.authenticate(expiring.key)
    assert info.value.code == "expired_api_key"
    store.revoke(good.record.id)
    with pytest.raises(AuthError) as info:
        store.authenticate(good.key)
    assert info.value.code == "revoked_api_key"
    assert store.get(good.record.id).state(clock.wall()) is KeyState.REVOKED


def test_a_change_made_by_another_connection_is_seen(tmp_path: Path, clock: FakeClock) -> None:
    """The keys panel (Qt thread) and a second process revoke keys the gateway has cached."""
    gateway_side = KeyStore(tmp_path / "k.sqlite3", clock=clock)
    made = gateway_side.create("shared")
    assert gateway_side.authenticate(made.key).name == "shared"
    other_process = KeyStore(tmp_path / "k.sqlite3", clock=clock)
    other_process.revoke(made.record.id)
    with pytest.raises(AuthError):
        gateway_side.authenticate(made.key)
    other_process.close()
    gateway_side.close()


def test_threads_share_the_store(store: KeyStore) -> None:
    made = [store.create(f"k{i}") for i in range(5)]
    errors: list[BaseException] = []

    def gateway_thread() -> None:
        try:
            for _ in range(200):
                for m in made:
                    store.authenticate(m.key)
                    store.record_usage(m.record.id, requests=1)
                store.flush_usage()
        except BaseException as exc:
            errors.append(exc)

    def ui_thread() -> None:
        try:
            for i in range(50):
                store.update(made[i % 5].record.id, rpm=10 + i)
                store.list_keys()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=gateway_thread), threading.Thread(target=ui_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    store.flush_usage()
    assert sum(k.requests for k in store.list_keys()) == 1000


def test_validation_messages(store: KeyStore, clock: FakeClock) -> None:
    for kwargs, words in (
        ({"name": " "}, "needs a name"),
        ({"name": "x" * 101}, "at most 100"),
        ({"name": "x", "rpm": 0}, "1 to 100000"),
        ({"name": "x", "max_sessions": 1000}, "1 to 100"),
        ({"name": "x", "expires_at": clock.wall() - 1}, "future"),
    ):
        with pytest.raises(ValidationError, match=words):
            store.create(**kwargs)
    with pytest.raises(NotFoundError):
        store.get(42)


def test_usage_flushes_into_daily_rows(store: KeyStore) -> None:
    made = store.create("usage")
    store.record_usage(made.record.id, requests=2, audio_in_s=1.5, audio_out_s=2.5)
    assert store.get(made.record.id).requests == 2, "pending usage shows before the flush"
    assert store.flush_usage() == 1
    record = store.get(made.record.id)
    assert (record.requests, record.audio_in_s, record.audio_out_s) == (2, 1.5, 2.5)
    (day,) = store.daily_usage(made.record.id)
    assert day.requests == 2 and day.audio_out_s == 2.5


def test_usage_of_a_deleted_key_is_dropped(store: KeyStore) -> None:
    made = store.create("gone")
    store.record_usage(made.record.id, requests=1)
    store.delete(made.record.id)
    store.flush_usage()
    assert store.daily_usage() == []


def test_admin_secret(store: KeyStore) -> None:
    first = store.ensure_admin_secret()
    assert first is not None and store.ensure_admin_secret() is None
    assert store.check_admin_secret(first)
    assert not store.check_admin_secret(first + "x")
    assert not store.check_admin_secret(None)
    second = store.new_admin_secret()
    assert not store.check_admin_secret(first) and store.check_admin_secret(second)


@pytest.mark.parametrize(
    "content",
    [
        {"sk-aaaaaaaaaaaa": {"name": "one", "created_at": 1.0}, "sk-bbbbbbbbbbbb": "two"},
        [{"key": "sk-aaaaaaaaaaaa", "name": "one"}, {"key": "sk-bbbbbbbbbbbb", "name": "two"}],
        {"keys": [{"api_key": "sk-aaaaaaaaaaaa", "name": "one"}, {"key": "sk-bbbbbbbbbbbb"}]},
    ],
)
def test_legacy_import_formats(store: KeyStore, tmp_path: Path, content: object) -> None:
    path = tmp_path / "api_keys.json"
    path.write_text(json.dumps(content))
    result = store.import_legacy_json(path)
    assert (result.imported, result.skipped) == (2, 0)
    assert store.authenticate("sk-aaaaaaaaaaaa").name == "one"
    assert store.authenticate("sk-bbbbbbbbbbbb").kind == KIND_LEGACY
    assert store.import_legacy_json(path).skipped == 2
    assert b"sk-aaaaaaaaaaaa" not in (tmp_path / "keys.sqlite3").read_bytes()


def test_legacy_import_rejects_unknown_shapes(store: KeyStore, tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValidationError, match=r"not in a known api_keys\.json format"):
        store.import_legacy_json(path)
    path.write_text("{broken")
    with pytest.raises(ValidationError, match="cannot be read as JSON"):
        store.import_legacy_json(path)


def test_malformed_key_skips_lookup_without_legacy_keys(store: KeyStore) -> None:
    with pytest.raises(AuthError) as info:
        store.authenticate("sk-whatever")
    assert info.value.code == "malformed_api_key"


def test_setup_stays_unfinished_until_finished_and_each_showing_replaces_the_secret(
    store: KeyStore,
) -> None:
    assert not store.setup_finished()
    shown_first = store.begin_setup()
    assert not store.setup_finished()  # quit during the welcome: it shows again
    shown_again = store.begin_setup()
    assert not store.check_admin_secret(shown_first)
    assert store.check_admin_secret(shown_again)
    store.finish_setup()
    assert store.setup_finished()
    assert store.check_admin_secret(shown_again)


def test_a_folder_from_before_the_setup_mark_counts_as_set_up(store: KeyStore) -> None:
    assert store.ensure_admin_secret() is not None  # as pplex-gateway or an older app did
    assert store.setup_finished()
