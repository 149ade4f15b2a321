"""Fixtures shared by the key store's tests (test_keystore, test_key_usage, test_key_legacy_import)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.keystore import KeyStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key_store(tmp_path: Path, clock: FakeClock) -> Iterator[KeyStore]:
    s = KeyStore(tmp_path / "keys.sqlite3", clock=clock)
    yield s
    s.close()
