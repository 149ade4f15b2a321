"""Journey 5: recordings dropped on the Offline page (XDND, as from a file manager) come back
as spoken answers with transcripts, named as documented; a file that is not audio, added with
"Add files…", is refused in its row with a sentence a person can read (and copy)."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest

from tests.audio.test_live_devices import speak
from tests.journeys.conftest import Launch
from tests.journeys.harness import JourneyFailure, Screen, wait_until

# Positions from the window's top-left corner, found once on a screenshot of the page.
SECOND_PERSONA = (222, 178)  # the box of "Casual conversation"
DROP_ZONE = (630, 420)
FIRST_ROW = (250, 367)  # in the table of jobs
DETAIL = (700, 610)  # the transcript-or-error pane under the table
PERSONAS = ("assistant-trained-role", "casual-conversation")
VOICE = "NATF2"
SYSTEM_PYTHON = "/usr/bin/python3"  # with Debian's python3-xlib, for the XDND source


def xdnd_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = [SYSTEM_PYTHON, "-c", "import Xlib"]
    return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0


def drop_files(screen: Screen, x: int, y: int, files: list[Path]) -> None:
    """A file manager's drag and drop: XDND from a separate X client."""
    helper = Path(__file__).with_name("xdnd_drop.py")
    done = subprocess.run(
        [SYSTEM_PYTHON, str(helper), str(x), str(y), *map(str, files)],
        env={"DISPLAY": screen.display.name, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise JourneyFailure(f"The page refused the drop: {done.stdout}{done.stderr}")


def test_dropped_recordings_come_back_answered_and_a_fake_wav_is_refused(
    launch: Launch, screen: Screen, tmp_path: Path
) -> None:
    if not xdnd_available():
        pytest.fail(f"{SYSTEM_PYTHON} lacks python-xlib (apt install python3-xlib).")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sentence, _pcm = speak(tmp_path)
    first, second = inbox / "question one.wav", inbox / "second.wav"
    shutil.copy(sentence, first)
    shutil.copy(sentence, second)
    app = launch()
    window = app.window()
    app.gateway_url()
    screen.focus(window)
    x, y, w, h = screen.geometry(window)
    screen.key("ctrl+3")
    page = screen.shot("offline-empty")
    screen.click(x + SECOND_PERSONA[0], y + SECOND_PERSONA[1])
    page = screen.repaints(page, "ticking a second persona")

    drop_files(screen, x + DROP_ZONE[0], y + DROP_ZONE[1], [first, second])
    expected = [
        inbox / f"{stem}.{persona}.{VOICE}{suffix}"
        for stem in ("question one", "second")
        for persona in PERSONAS
        for suffix in (".wav", ".json")
    ]
    wait_until(
        lambda: all(p.exists() and p.stat().st_size > 0 for p in expected) or None,
        "four answers and their transcripts next to the inputs",
        timeout=90,
        every=0.5,
    )
    for transcript in expected[1::2]:
        wait_until(partial(_json, transcript), f"{transcript.name} to be complete JSON")
    screen.shot("offline", region=(x, y, w, h))
    assert sorted(p.name for p in inbox.iterdir()) == sorted(
        [first.name, second.name, *(p.name for p in expected)]
    )

    fake = inbox / "notes.wav"
    fake.write_text("These are my shopping notes, not a recording.\n")
    before = screen.grab()
    screen.key("alt+a")  # Add files…: this one comes through the file dialog, typed
    dialog = screen.window_named("^Add audio files$")
    screen.focus(dialog)
    screen.type(str(fake))
    screen.key("Return")
    screen.repaints(before, "the refused file's row")
    screen.shot("offline-refused", region=(x, y, w, h))
    # Its row is the newest (the last); selected, the pane below the table tells why, copyable.
    screen.click(x + FIRST_ROW[0], y + FIRST_ROW[1])
    screen.key("Down", "Down", "Down", "Down")
    screen.click(x + DETAIL[0], y + DETAIL[1])
    screen.key("ctrl+a", "ctrl+c")

    def copied() -> str | None:
        text = screen.clipboard()
        return text if "notes.wav" in text else None

    reason = wait_until(copied, "the reason the file was refused")
    screen.shot("offline-refused-reason")
    (screen.shots / "reason.txt").write_text(reason)
    assert "'notes.wav' is not an audio file" in reason, reason
    assert "Traceback" not in reason, reason
    assert not list(inbox.glob("notes.*.json")), "a refused file got an answer"


def _json(path: Path) -> bool | None:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return True
