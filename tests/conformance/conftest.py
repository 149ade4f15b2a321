"""Fixtures for the conformance tier: the real Kyutai server, built once and cached.

The environment is prepared before the first test runs (``pytest_runtestloop``), so the
minutes a first build can take count against no test's timeout; each subprocess of the build
has its own bound. Run the tier alone with ``./dev.sh test tests/conformance``.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.gateway_support import (
    GatewayFactory,
    KyutaiGateway,
    start_gateway,
    stop_gateway,
)
from tests.conformance.kyutai_env import (
    MOSHI_PIN,
    TORCH_PIN,
    EnvironmentUnavailable,
    KyutaiServer,
    Report,
    ServerFailed,
    cache_root,
    prepare,
)
from tests.skips import skip_or_fail

HERE = Path(__file__).resolve().parent
REPORT_KEY = pytest.StashKey[Report]()
# Lines the server prints when a handler or the model raised: a failure whatever the client saw.
SERVER_FAULTS = ("Traceback", "[Err ]", "Error handling request")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server_faults_expected: the test makes the real server raise on purpose"
    )


def _report(config: pytest.Config) -> Report:
    return config.stash.setdefault(REPORT_KEY, Report())


def _prepare_into(report: Report) -> None:
    if report.env is not None or report.skip_reason or report.build_error:
        return
    try:
        report.env = prepare()
    except EnvironmentUnavailable as exc:
        report.skip_reason = f"The Kyutai conformance venv cannot be built here: {exc}"
    except ServerFailed as exc:
        report.build_error = str(exc)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[None]:
    wanted = any(HERE in item.path.parents for item in session.items)
    if wanted and not session.config.option.collectonly:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"Preparing the Kyutai conformance environment under {cache_root()} "
                "(the first build takes about a minute)."
            )
        _prepare_into(_report(session.config))
    return (yield)


@pytest.fixture(scope="session")
def conformance_report(pytestconfig: pytest.Config) -> Report:
    return _report(pytestconfig)


@pytest.fixture(scope="session")
def kyutai_server(
    conformance_report: Report, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KyutaiServer]:
    report = conformance_report
    _prepare_into(report)
    if report.skip_reason:
        skip_or_fail(report.skip_reason)
    if report.build_error or report.env is None:
        pytest.fail(f"Building the conformance assets failed: {report.build_error}", pytrace=False)
    server = KyutaiServer(report.env, tmp_path_factory.mktemp("kyutai") / "server.log")
    try:
        server.start()
    except ServerFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    report.server_start_seconds = server.start_seconds
    try:
        yield server
    finally:
        server.stop()
        report.frame_times_ms = server.frame_times_ms()


@pytest.fixture
def kyutai(kyutai_server: KyutaiServer, request: pytest.FixtureRequest) -> Iterator[KyutaiServer]:
    """The shared server, checked after each test: still up, and nothing raised inside it."""
    before = len(kyutai_server.log_text())
    yield kyutai_server
    new = kyutai_server.log_text()[before:]
    faults = [line for line in new.splitlines() if line.startswith(SERVER_FAULTS)]
    if request.node.get_closest_marker("server_faults_expected") is not None:
        faults = []
    if faults or not kyutai_server.running:
        pytest.fail(
            "The real server logged a fault or stopped during this test:\n"
            + "\n".join(new.splitlines()[-30:]),
            pytrace=False,
        )


@pytest.fixture
async def make_kyutai_gateway(
    kyutai: KyutaiServer, tmp_path: Path
) -> AsyncIterator[GatewayFactory]:
    """Real gateways in front of the real server: ``await make_kyutai_gateway()``, or with
    ``backend_url=`` (a tap in between) and any ``Settings`` field to change."""
    made: list[KyutaiGateway] = []

    async def factory(backend_url: str | None = None, **settings: Any) -> KyutaiGateway:
        folder = tmp_path / f"gateway{len(made)}"
        folder.mkdir()
        gw = await start_gateway(kyutai, folder, backend_url, **settings)
        made.append(gw)
        return gw

    yield factory
    for gw in made:
        await stop_gateway(gw)


@pytest.fixture
async def kyutai_gateway(make_kyutai_gateway: GatewayFactory) -> KyutaiGateway:
    return await make_kyutai_gateway()


def _pct(values: list[float], q: float) -> float:
    if q == 0.5:
        return float(statistics.median(values))
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float]) -> str:
    return (
        f"{len(values)} frames, median {_pct(values, 0.5):.1f} ms, "
        f"p90 {_pct(values, 0.9):.1f} ms, max {max(values):.1f} ms"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash.get(REPORT_KEY, None)
    if report is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section("Kyutai conformance: real moshi.server, tiny random weights")
    if report.skip_reason:
        write(f"skipped: {report.skip_reason}")
        return
    if report.build_error:
        write(f"build failed: {report.build_error}")
        return
    if report.env is not None:
        how = "built" if report.env.built else "cached, checked"
        write(f"environment: {report.env.root} ({how} in {report.env.seconds:.1f} s)")
    if report.server_start_seconds is not None:
        write(
            f"server: {MOSHI_PIN}, {TORCH_PIN} on CPU, listening "
            f"{report.server_start_seconds:.1f} s after launch"
        )
    if report.frame_times_ms:
        write(f"server 'frame handled in' log: {_ms(report.frame_times_ms)} (real time: 80 ms)")
    if report.round_trips_ms:
        write(f"client round trip, one frame at a time: {_ms(report.round_trips_ms)}")
    direct, gateway = report.paired_direct_ms, report.paired_gateway_ms
    if direct and gateway:
        load = f"; load average {report.paired_load:.1f}" if report.paired_load is not None else ""
        write(
            "gateway against the real server, lock-step round trip per frame, direct and "
            f"through the gateway in alternating rounds{load}:"
        )
        write(f"  direct:          {_ms(direct)}")
        write(f"  through gateway: {_ms(gateway)}")
        write(
            f"  added by the gateway: p50 {_pct(gateway, 0.5) - _pct(direct, 0.5):+.1f} ms, "
            f"p90 {_pct(gateway, 0.9) - _pct(direct, 0.9):+.1f} ms"
        )
