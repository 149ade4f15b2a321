"""The audio tier: real sounddevice streams on PulseAudio null sinks (ARCHITECTURE.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio import pulse
from tests.sim.conftest import make_sim  # noqa: F401 - the pplex-sim fixture, shared
from tests.skips import skip_or_fail

_log = logging.getLogger(__name__)
_HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def pulse_devices() -> Iterator[pulse.PulseSetup]:
    """A private PulseAudio daemon with sinks ``mic`` and ``spk``; PortAudio re-scanned to see it."""
    try:
        setup = pulse.start()
    except pulse.PulseUnavailable as exc:
        skip_or_fail(f"PulseAudio cannot run on this machine: {exc}")
    try:
        from pplex_desktop.audio.portaudio import list_devices, refresh_devices

        # PortAudio lists devices once, when it initialises; the daemon may be newer than that.
        refresh_devices()
        names = {d.name for d in list_devices()}
        if not names & {"pulse", "default"}:
            skip_or_fail(
                "PulseAudio runs, but PortAudio sees no 'pulse' or 'default' device: the ALSA "
                "PulseAudio plugin (libasound2-plugins) is missing."
            )
        _log.info("A private PulseAudio with null sinks listens on %s.", setup.server)
        yield setup
    finally:
        pulse.stop(setup)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-time tests run without coverage tracing: tracing every line of the conversation's
    loop slows it enough, under the whole suite's coverage run, that echo cancellation lost its
    alignment (19 dB instead of 63 dB of margin, 2 runs in 2) and devices underflow. The same
    code is covered by the fake-device tests of the unit and GUI tiers."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.no_cover)
