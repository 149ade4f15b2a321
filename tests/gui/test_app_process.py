"""The real ``pplex-desktop`` process: qasync loop, window, gateway, and a graceful exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from pplex_desktop.app import EXIT_WHEN_SHOWN_ENV

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", PPLEX_ADMIN_SECRET="process-test-secret-0123456789")
    env.pop(EXIT_WHEN_SHOWN_ENV, None)
    env.update(extra)
    return env


def test_the_window_shows_and_the_app_exits_cleanly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pplex_desktop.app", "--data-dir", str(tmp_path), "--demo"],
        cwd=REPO,
        env=_env(**{EXIT_WHEN_SHOWN_ENV: "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pplex-desktop shown at" in done.stdout
    assert "pplex-desktop has stopped." in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_stops_the_gateway_gracefully(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pplex_desktop.app",
            "--data-dir",
            str(tmp_path),
            "--demo",
            "--port",
            "0",
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    listening = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "The gateway listens on" in line:
                listening.set()

    # A reader thread, so a start that never logs fails in 30 s with what the app said, rather
    # than holding the test until its timeout.
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        started = listening.wait(30)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
        assert process.stderr is not None
        process.stderr.close()
    output = "".join(lines)
    assert started, f"The gateway never said it listens; the app logged:\n{output}"
    assert process.returncode == 0, output
    assert "The gateway has stopped (the application is quitting)." in output
    assert "pplex-desktop has stopped." in output
    assert "Traceback" not in output


def test_start_up_does_not_load_the_heavy_optional_libraries() -> None:
    """scipy (through pyloudnorm) cost the window a second; it and livekit load when used."""
    code = (
        "import sys\n"
        "import pplex_desktop.app, pplex_desktop.ui.shell, pplex_desktop.gateway.server\n"
        "heavy = sorted(m for m in ('scipy', 'livekit', 'pyloudnorm') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "", f"loaded at start-up: {done.stdout.strip()}"
