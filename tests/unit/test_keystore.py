"""The key store: keys as digests, authentication, validation and the admin secret."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.errors import AuthError, NotFoundError, ValidationError
from pplex_desktop.core.keystore import KeyState, KeyStore


def test_only_digests_are_stored(key_store: KeyStore, tmp_path: Path) -> None:
    made = key_store.create("secretive")
    key_store.flush_usage()
    for path in tmp_path.iterdir():
        assert made.key.encode() not in path.read_bytes()
    row = (
        sqlite3.connect(tmp_path / "keys.sqlite3").execute("SELECT digest FROM api_keys").fetchone()
    )
    assert len(row[0]) == 64


def test_authenticate_each_state(key_store: KeyStore, clock: FakeClock) -> None:
    good = key_store.create("good")
    assert key_store.authenticate(good.key).name == "good"
    expiring = key_store.create("soon", expires_at=clock.wall() + 10)
    clock.advance(11)
    with pytest.raises(AuthError) as info:
        key_store.authenticate(expiring.key)
    assert info.value.code == "expired_api_key"
    key_store.revoke(good.record.id)
    with pytest.raises(AuthError) as info:
        key_store.authenticate(good.key)
    assert info.value.code == "revoked_api_key"
    assert key_store.get(good.record.id).state(clock.wall()) is KeyState.REVOKED


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


def test_threads_share_the_store(key_store: KeyStore) -> None:
    made = [key_store.create(f"k{i}") for i in range(5)]
    errors: list[BaseException] = []

    def gateway_thread() -> None:
        try:
            for _ in range(200):
                for m in made:
                    key_store.authenticate(m.key)
                    key_store.record_usage(m.record.id, requests=1)
                key_store.flush_usage()
        except BaseException as exc:
            errors.append(exc)

    def ui_thread() -> None:
        try:
            for i in range(50):
                key_store.update(made[i % 5].record.id, rpm=10 + i)
                key_store.list_keys()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=gateway_thread), threading.Thread(target=ui_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    key_store.flush_usage()
    assert sum(k.requests for k in key_store.list_keys()) == 1000


def test_validation_messages(key_store: KeyStore, clock: FakeClock) -> None:
    for kwargs, words in (
        ({"name": " "}, "needs a name"),
        ({"name": "x" * 101}, "at most 100"),
        ({"name": "x", "rpm": 0}, "1 to 100000"),
        ({"name": "x", "max_sessions": 1000}, "1 to 100"),
        ({"name": "x", "expires_at": clock.wall() - 1}, "future"),
    ):
        with pytest.raises(ValidationError, match=words):
            key_store.create(**kwargs)
    with pytest.raises(NotFoundError):
        key_store.get(42)


def test_admin_secret(key_store: KeyStore) -> None:
    first = key_store.ensure_admin_secret()
    assert first is not None and key_store.ensure_admin_secret() is None
    assert key_store.check_admin_secret(first)
    assert not key_store.check_admin_secret(first + "x")
    assert not key_store.check_admin_secret(None)
    second = key_store.new_admin_secret()
    assert not key_store.check_admin_secret(first) and key_store.check_admin_secret(second)


def test_malformed_key_skips_lookup_without_legacy_keys(key_store: KeyStore) -> None:
    with pytest.raises(AuthError) as info:
        key_store.authenticate("sk-whatever")
    assert info.value.code == "malformed_api_key"


def test_setup_stays_unfinished_until_finished_and_each_showing_replaces_the_secret(
    key_store: KeyStore,
) -> None:
    assert not key_store.setup_finished()
    shown_first = key_store.begin_setup()
    assert not key_store.setup_finished()  # quit during the welcome: it shows again
    shown_again = key_store.begin_setup()
    assert not key_store.check_admin_secret(shown_first)
    assert key_store.check_admin_secret(shown_again)
    key_store.finish_setup()
    assert key_store.setup_finished()
    assert key_store.check_admin_secret(shown_again)


def test_a_folder_from_before_the_setup_mark_counts_as_set_up(key_store: KeyStore) -> None:
    assert key_store.ensure_admin_secret() is not None  # as pplex-gateway or an older app did
    assert key_store.setup_finished()
