"""Virtual sound devices on PulseAudio null sinks (ARCHITECTURE.md), for tests and benchmarks.

Sink ``mic`` is what the "microphone" hears: play into it, and its monitor ``mic.monitor`` is
the default source. Sink ``spk`` is the default speaker; record what the app played from
``spk.monitor``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SINKS = ("spk", "mic")
READY_TIMEOUT_S = 10.0


class PulseUnavailable(RuntimeError):
    """PulseAudio cannot run here; the reason is a sentence for a skip message."""


@dataclass
class PulseSetup:
    process: subprocess.Popen[bytes] | None = None  # set when we started the daemon
    loaded_modules: list[str] = field(default_factory=list)  # set when we reused one
    log_path: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None


def _pactl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=check)


def running() -> bool:
    try:
        return _pactl("info", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PulseUnavailable(
                f"PulseAudio exited at start (code {process.returncode}): "
                f"{log_path.read_text(errors='replace').strip()[-500:]}"
            )
        if running():
            return
        time.sleep(0.1)  # polling a daemon we just started; no event to await here
    process.kill()
    process.wait(5)
    raise PulseUnavailable(f"PulseAudio did not answer within {READY_TIMEOUT_S:g} s.")


def start() -> PulseSetup:
    """Make sure a daemon with the two null sinks runs and is the default; start one if needed."""
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        if shutil.which(tool) is None:
            raise PulseUnavailable(f"'{tool}' is not installed (apt install pulseaudio-utils).")
    setup = PulseSetup()
    if running():
        present = _pactl("list", "short", "sinks").stdout.split()
        for sink in SINKS:
            if sink not in present:
                result = _pactl("load-module", "module-null-sink", f"sink_name={sink}")
                setup.loaded_modules.append(result.stdout.strip())
    else:
        log = tempfile.NamedTemporaryFile(prefix="pplex-pulse-", suffix=".log", delete=False)  # noqa: SIM115
        setup.log_path = Path(log.name)
        try:
            setup.process = subprocess.Popen(
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
            )
        except OSError as exc:
            raise PulseUnavailable(f"PulseAudio could not be started: {exc}.") from None
        finally:
            log.close()
        _wait_ready(setup.process, setup.log_path)
    _pactl("set-default-sink", "spk")
    _pactl("set-default-source", "mic.monitor")
    return setup


def stop(setup: PulseSetup) -> None:
    """Undo ``start``: stop the daemon we started, or unload the sinks we added."""
    for module in setup.loaded_modules:
        _pactl("unload-module", module, check=False)
    if setup.process is not None:
        setup.process.terminate()
        try:
            setup.process.wait(10)
        except subprocess.TimeoutExpired:
            setup.process.kill()
            setup.process.wait(5)
    if setup.log_path is not None:
        with contextlib.suppress(OSError):
            setup.log_path.unlink()
