"""The journeys tier: the installed ``pplex-desktop`` on Xvfb, driven with real input events.

One X server and one private PulseAudio per test session; every journey gets a fresh data
folder and a fresh home (so Qt's own settings never leak between journeys), and every app it
started is ended. The tier skips only where the X tools are missing, and never in CI, where a
missing tool is a failure of the machine's set-up (``./dev.sh test`` installs them).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import pytest

from tests.audio import pulse
from tests.journeys import harness
from tests.journeys.harness import App, Display, Screen

Launch = Callable[..., App]
ADMIN_SECRET = "journey-admin-secret-0123456789"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"The journeys tier cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def display() -> Iterator[Display]:
    missing = harness.missing_tools()
    if missing:
        _unavailable(f"missing {', '.join(missing)} (./dev.sh test installs them).")
    if not harness.installed_command().exists():
        _unavailable(f"{harness.installed_command()} is not installed.")
    xvfb = harness.start_display()
    try:
        yield xvfb
    finally:
        xvfb.stop()


@pytest.fixture(scope="session")
def sound() -> Iterator[pulse.PulseSetup]:
    try:
        setup = pulse.start()
    except pulse.PulseUnavailable as exc:
        _unavailable(f"PulseAudio cannot run here: {exc}")
    try:
        yield setup
    finally:
        pulse.stop(setup)


@pytest.fixture
def screen(display: Display, tmp_path: Path) -> Screen:
    return Screen(display, tmp_path / "shots")


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def launch(
    screen: Screen, sound: pulse.PulseSetup, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Launch]:
    """Start the app; at the end of the journey every app still running gets SIGTERM and must
    exit within the budget, and none may have logged a traceback."""
    apps: list[App] = []

    def start(
        args: Sequence[str] = ("--demo", "--port", "0"),
        data_dir: Path | None = None,
        admin_secret: str | None = ADMIN_SECRET,
        env: dict[str, str] | None = None,
    ) -> App:
        extra = dict(env or {})
        if admin_secret is not None:
            extra["PPLEX_ADMIN_SECRET"] = admin_secret
        app = harness.launch(
            screen,
            data_dir or tmp_path / "data",
            tmp_path / f"app-{len(apps) + 1}.log",
            tmp_path / "home",
            args,
            extra,
        )
        apps.append(app)
        return app

    try:
        yield start
        if request.node.stash.get(_FAILED, False):
            screen.shot("failure")  # what the screen showed when the journey failed
        for app in apps:
            if app.process.poll() is None:
                app.stop(signal.SIGTERM)
            app.check_log()
    finally:
        for app in apps:
            app.kill()
