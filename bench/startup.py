"""Time from process start to the main window shown: pplex-desktop against a bare PySide6
QMainWindow started the same way (a fresh Python process, offscreen platform, warm caches).

Both print the wall-clock time from a zero-delay timer after ``show()``; the parent notes the
time just before starting the process. The app runs with --demo and a data folder that already
has an admin secret, so no welcome dialog stands between start and window.

    .venv/bin/python -m bench.startup
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import save, summary

RUNS = 7
REPO = Path(__file__).resolve().parents[1]
BARE = """
import time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
window = QMainWindow()
window.setWindowTitle("bare")
window.resize(1080, 700)
window.show()
def shown():
    print(f"shown at {time.time():.6f}", flush=True)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def _env(data: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PPLEX_DESKTOP_EXIT_WHEN_SHOWN="1",
        PPLEX_ADMIN_SECRET="startup-bench-admin-secret-0123",
        PPLEX_DATA_DIR=str(data),
    )
    return env


def _once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the window shown, seconds to the process gone)."""
    started = time.time()
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr}")
    for line in done.stdout.splitlines():
        if "shown at" in line:
            return float(line.rsplit(" ", 1)[1]) - started, ended - started
    raise RuntimeError(f"{command[:3]} never said it was shown:\n{done.stdout}")


def main() -> int:
    python = sys.executable
    app = [python, "-m", "pplex_desktop.app", "--demo", "--port", "0"]
    bare = [python, "-c", BARE]
    with tempfile.TemporaryDirectory(prefix="pplex-startup-") as tmp:
        env = _env(Path(tmp))
        _once(app, env)  # warm-up: page cache, .pyc files, the data folder's first launch
        _once(bare, env)
        app_shown: list[float] = []
        app_exit: list[float] = []
        bare_shown: list[float] = []
        for _ in range(RUNS):
            shown, gone = _once(app, env)
            app_shown.append(shown * 1000)
            app_exit.append(gone * 1000)
            bare_shown.append(_once(bare, env)[0] * 1000)
    app_stats, bare_stats = summary(app_shown), summary(bare_shown)
    ratio = app_stats["p50"] / bare_stats["p50"]
    path = save(
        "startup",
        {
            "what": "process start to main window shown, offscreen, warm, ms",
            "runs": RUNS,
            "pplex_desktop_ms": app_stats,
            "bare_qmainwindow_ms": bare_stats,
            "ratio_p50": round(ratio, 2),
            "pplex_desktop_start_to_exit_ms": summary(app_exit),
            "target": "under 1 s warm",
        },
    )
    print(
        f"pplex-desktop window shown after {app_stats['p50']:.0f} ms p50, a bare QMainWindow "
        f"after {bare_stats['p50']:.0f} ms: x{ratio:.2f} (results in {path})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
