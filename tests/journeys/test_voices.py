"""Custom voices: recorded in Settings → Voices from the microphone, with consent, saved into
the demo backend's voice folder with its consent record, and offered by the gateway."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from tests.audio.test_live_devices import speak
from tests.journeys.conftest import ADMIN_SECRET, Launch
from tests.journeys.harness import Screen, differs, wait_until
from tests.journeys.http import request

NAME = "journey-voice"
VOICES_TAB = 4  # Model servers, Conversation, Limits, Network, Voices
# The Listen button, from the Settings dialog's top-left corner (found on a screenshot).
LISTEN = (660, 158, 80, 18)


def test_a_voice_recorded_in_settings_is_stored_with_consent_and_offered(
    launch: Launch, screen: Screen, tmp_path: Path
) -> None:
    sentence, _pcm = speak(tmp_path)
    data = tmp_path / "data"
    app = launch(data_dir=data)
    window = app.window()
    url = app.gateway_url()
    screen.focus(window)
    screen.key("ctrl+comma")
    dialog = screen.window_named("^Settings$")
    screen.focus(dialog)
    before = screen.shot("settings")
    screen.key(*["ctrl+Tab"] * VOICES_TAB)
    tab = screen.repaints(before, "the Voices tab")

    # Read the script aloud: the sentence, three times, into the virtual microphone.
    screen.key("alt+r")  # Record
    speaking = threading.Thread(
        target=lambda: [
            subprocess.run(["paplay", "--device=mic", str(sentence)], check=True, timeout=30)
            for _ in range(3)
        ]
    )
    speaking.start()
    speaking.join(60)
    screen.key("alt+s")  # Stop
    take = data / "voice-takes" / "take.wav"
    # Stop is heard at the next block; the take is written and offered after that. Until then
    # the name typed below would be overwritten, so wait as a person does: for Listen to light up.
    dx, dy, _dw, _dh = screen.geometry(dialog)
    listen = (dx + LISTEN[0], dy + LISTEN[1], *LISTEN[2:])
    wait_until(lambda: differs(tab, screen.grab(), listen) or None, "Listen, offered for the take")
    screen.key("alt+n")  # the name field
    screen.key("ctrl+a")
    screen.type(NAME)
    screen.key("Tab", "space")  # the consent box, ticked
    screen.key("alt+v")  # Save voice
    stored = data / "voices" / f"{NAME}.wav"
    wait_until(lambda: stored.exists() or None, f"{stored.name} in the voice folder", timeout=30)
    screen.shot("voices", region=screen.geometry(dialog))
    record = json.loads((data / "voices" / f"{NAME}.wav.consent.json").read_text())
    assert record["voice"] == f"{NAME}.wav"
    assert record["consent"]["statement"].startswith("This voice is my own")
    assert record["consent"]["by"] == "admin"
    # Deleted after the voice is stored, on the app's I/O thread: it may take a moment.
    wait_until(lambda: not take.exists() or None, "the recorded take to be deleted")

    status, body = request(
        url + "/admin/keys/generate",
        method="POST",
        headers={"X-Admin-Secret": ADMIN_SECRET, "Content-Type": "application/json"},
        data=json.dumps({"name": "listener"}).encode(),
    )
    assert status == 200, body
    status, voices = request(url + "/v1/voices", headers={"X-API-Key": body["key"]})
    assert status == 200, voices
    ours = [v for v in voices["voices"] if v["id"] == f"{NAME}.wav"]
    assert ours and ours[0]["custom"] is True, voices
