"""A strict harness: warnings are errors (pyproject), and so is any ERROR log record a test did
not declare with ``@pytest.mark.expect_error_logs``: an "Error handling request" from aiohttp
or "Task was destroyed but it is pending" from asyncio means a bug even when asserts pass."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_collector = _ErrorCollector()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_collector)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _fail_on_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    _collector.records.clear()
    yield
    records, _collector.records[:] = list(_collector.records), []
    if records and request.node.get_closest_marker("expect_error_logs") is None:
        lines = "\n".join(f"{r.name}: {r.getMessage()}" for r in records[:10])
        pytest.fail(f"Unexpected ERROR log records:\n{lines}", pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test ever touches the user's real profile."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("PPLEX_DATA_DIR", str(path))
    return path
