"""What the Talk journeys share: the gateway's live calls, and a sentence said and heard."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from tests.audio.test_live_devices import Parec
from tests.journeys.conftest import ADMIN_SECRET
from tests.journeys.harness import wait_until
from tests.journeys.http import admin

ECHO_TAIL_S = 1.5  # the demo's echo delay plus the playback buffer, with room to spare


def live_sessions(url: str, secret: str = ADMIN_SECRET) -> list[dict[str, object]]:
    """The gateway's live conversations, from its admin API."""
    status, body = admin(url, secret, "/admin/sessions")
    assert status == 200, body
    return [s for s in body["active"] if s["state"] == "live"]


def say_and_listen(wav: Path, folder: Path, name: str) -> np.ndarray:
    """Play ``wav`` into the microphone sink and return what the speaker sink played meanwhile."""
    ear = Parec("spk.monitor", folder / f"{name}.raw")
    try:
        # parec records once it has connected: a loaded machine may take a while to start it.
        wait_until(
            lambda: ear.path.stat().st_size > 4_800 or None, "the speaker recording to start"
        )
        subprocess.run(["paplay", "--device=mic", str(wav)], check=True, timeout=30)
        time.sleep(ECHO_TAIL_S)  # the echo is still on its way: nothing to await from outside
    finally:
        heard = ear.stop()
    return heard


def fixed_playback_buffer(data_dir: Path, ms: int = 160) -> Path:
    """A data folder whose Talk page remembers a fixed playback buffer, as a user's would who
    chose one. Journeys that compare the model's echo sample by sample use it: the adaptive
    buffer (the default) cuts and stretches pauses to follow the link, by design, which blurs a
    one-lag comparison of a whole sentence. The adaptive buffer is judged by its own tests
    (tests/unit/test_jitter_adaptive.py, tests/audio) and bench/mouth_to_ear.py."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / "ui-state.json").write_text(json.dumps({"talk/jitter_ms": ms}) + "\n")
    return data_dir
