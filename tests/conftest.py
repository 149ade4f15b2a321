"""A strict harness: warnings are errors (pyproject), and so is any ERROR log record a test did
not declare with ``@pytest.mark.expect_error_logs``: an "Error handling request" from aiohttp
or "Task was destroyed but it is pending" from asyncio means a bug even when asserts pass.
Every event loop runs in asyncio's debug mode, and a callback that blocks its loop fails the
test too (tests/loop_debug.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests import loop_debug


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_collector = _ErrorCollector()
_slow_callbacks = loop_debug.SlowCallbackCollector()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_collector)
    _slow_callbacks.install()
    loop_debug.export_settings()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Generator[None, object, object]:
    """pytest-asyncio's loops (one runner per loop scope) are watched as soon as they exist."""
    result = yield
    if fixturedef.argname.endswith("_scoped_runner") and isinstance(result, asyncio.Runner):
        loop_debug.watch(result.get_loop())
    return result


@pytest.fixture(autouse=True)
def _fail_on_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    _collector.records.clear()
    yield
    records, _collector.records[:] = list(_collector.records), []
    if records and request.node.get_closest_marker("expect_error_logs") is None:
        lines = "\n".join(f"{r.name}: {r.getMessage()}" for r in records[:10])
        pytest.fail(f"Unexpected ERROR log records:\n{lines}", pytrace=False)


@pytest.fixture(autouse=True)
def _fail_on_slow_callbacks(request: pytest.FixtureRequest) -> Iterator[None]:
    _slow_callbacks.records.clear()
    yield
    records, _slow_callbacks.records[:] = list(_slow_callbacks.records), []
    blocking = [r for r in records if r.blocking]
    if blocking and request.node.get_closest_marker("slow_callbacks_allowed") is None:
        lines = "\n".join(r.describe() for r in blocking[:10])
        pytest.fail(
            f"A callback blocked an event loop (CPU time of {loop_debug.slow_callback_ms():g} ms "
            f"or more, or {loop_debug.stalled_callback_ms():g} ms or more in all; see "
            f"tests/loop_debug.py):\n{lines}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _isolated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test ever touches the user's real profile."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("PPLEX_DATA_DIR", str(path))
    return path
