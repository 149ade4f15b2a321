"""Virtual sound devices on PulseAudio null sinks (ARCHITECTURE.md), for tests and benchmarks.

Sink ``mic`` is what the "microphone" hears: play into it, and its monitor ``mic.monitor`` is
the default source. Sink ``spk`` is the default speaker; record what the app played from
``spk.monitor``.

Each run gets a private daemon in its own runtime folder, reached through ``PULSE_SERVER``
(which this process, PortAudio's ALSA plugin and every child such as paplay inherit). Two test
runs at once, or a developer's own PulseAudio, then never hear each other, and stopping ours
cannot break anyone else's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SINKS = ("spk", "mic")
READY_TIMEOUT_S = 10.0


class PulseUnavailable(RuntimeError):
    """PulseAudio cannot run here; the reason is a sentence for a skip message."""


@dataclass
class PulseSetup:
    process: subprocess.Popen[bytes]
    runtime: Path
    previous_server: str | None

    @property
    def server(self) -> str:
        return f"unix:{self.runtime / 'native'}"


def pactl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=check)


def _answers() -> bool:
    try:
        return pactl("info", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _log_tail(runtime: Path) -> str:
    try:
        return (runtime / "daemon.log").read_text(errors="replace").strip()[-500:]
    except OSError:
        return ""


def start() -> PulseSetup:
    """Start a private daemon with the two null sinks as defaults and point this process at it."""
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        if shutil.which(tool) is None:
            raise PulseUnavailable(
                f"'{tool}' is not installed (apt install pulseaudio pulseaudio-utils)."
            )
    runtime = Path(tempfile.mkdtemp(prefix="pplex-pulse-"))
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "PULSE_STATE_PATH": str(runtime)}
    env.pop("PULSE_SERVER", None)
    try:
        with (runtime / "daemon.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    "pulseaudio",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "-n",
                    *(f"--load=module-null-sink sink_name={s}" for s in SINKS),
                    "--load=module-native-protocol-unix",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
    except OSError as exc:
        shutil.rmtree(runtime, ignore_errors=True)
        raise PulseUnavailable(f"PulseAudio could not be started: {exc}.") from None
    setup = PulseSetup(process, runtime, os.environ.get("PULSE_SERVER"))
    os.environ["PULSE_SERVER"] = setup.server
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _answers():
        if process.poll() is not None or time.monotonic() > deadline:
            reason = _log_tail(runtime)
            stop(setup)
            raise PulseUnavailable(
                f"PulseAudio did not come up within {READY_TIMEOUT_S:g} s: {reason}"
            )
        time.sleep(0.1)  # polling a daemon we just started: it offers nothing to await
    pactl("set-default-sink", "spk")
    pactl("set-default-source", "mic.monitor")
    return setup


def stop(setup: PulseSetup) -> None:
    """Stop our daemon, forget its address and remove its folder."""
    if setup.process.poll() is None:
        setup.process.terminate()
        try:
            setup.process.wait(10)
        except subprocess.TimeoutExpired:
            setup.process.kill()
            setup.process.wait(5)
    if setup.previous_server is None:
        os.environ.pop("PULSE_SERVER", None)
    else:
        os.environ["PULSE_SERVER"] = setup.previous_server
    shutil.rmtree(setup.runtime, ignore_errors=True)
