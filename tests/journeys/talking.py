"""What the Talk journeys share: the gateway's live calls, and a sentence said and heard."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tests.audio.test_live_devices import Parec
from tests.journeys.conftest import ADMIN_SECRET
from tests.journeys.harness import Screen, crop, wait_until
from tests.journeys.http import admin

ECHO_TAIL_S = 1.5  # the demo's echo delay plus the playback buffer, with room to spare
# The Talk page's Connect button, from the window's top-left corner (found on a screenshot).
# Hang up takes its place during a call, at the same size.
CONNECT = (980, 32, 84, 24)
# A label's text is black when the button can be pressed; greyed out (about 190 of 255 at its
# darkest) while the page says why not, e.g. "Looking for sound devices…".
INK = 80


def connect(
    screen: Screen, window: str, like: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.bool_]:
    """Press Connect once it can be pressed, as a person does who sees it greyed out; returns
    its label's ink, for the next call: ``like`` waits for that label, not Hang up's.

    The page looks for sound devices on a thread when it opens, and a call that just ended
    takes a moment to be idle again: a key press meanwhile is ignored, rightly.
    """
    x, y, _w, _h = screen.geometry(window)
    button = (x + CONNECT[0], y + CONNECT[1], *CONNECT[2:])

    def ready() -> npt.NDArray[np.bool_] | None:
        ink: npt.NDArray[np.bool_] = crop(screen.grab(), button).min(axis=2) < INK
        if like is None:
            return ink if ink.any() else None
        return ink if np.array_equal(ink, like) else None

    ink = wait_until(ready, "the Connect button to be enabled", every=0.2)
    screen.key("alt+o")
    return ink


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


# What the app logs when sound was lost on the way (audio/conversation.py, _log_glitches).
SOUND_LOST = (
    "The speaker ran dry",
    "of the model's audio were dropped",
    "The microphone lost audio",
)


def sound_lost(log: str) -> list[str]:
    """The lines of an app's log that say sound was lost."""
    return [line for line in log.splitlines() if any(s in line for s in SOUND_LOST)]


def fixed_playback_buffer(data_dir: Path, ms: int = 160) -> Path:
    """A data folder whose Talk page remembers a fixed playback buffer, as a user's would who
    chose one. Journeys that compare the model's echo sample by sample use it: the adaptive
    buffer (the default) cuts and stretches pauses to follow the link, by design, which blurs a
    one-lag comparison of a whole sentence. The adaptive buffer is judged by its own tests
    (tests/unit/test_jitter_adaptive.py, tests/audio) and bench/mouth_to_ear.py."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / "ui-state.json").write_text(json.dumps({"talk/jitter_ms": ms}) + "\n")
    return data_dir
