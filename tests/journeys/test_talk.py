"""Journey 3: a live conversation on the Talk page, heard through the virtual sound card.

The demo backend echoes the caller's voice: a sentence played into the virtual microphone must
come out of the virtual speaker. In Hold-to-talk it must not while nothing is held, and must
while Space is held. The transcript fills with words; SIGTERM mid-call still exits in time.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np

from tests.audio.analysis import locate
from tests.audio.test_live_devices import speak
from tests.journeys.conftest import Launch
from tests.journeys.harness import EXIT_BUDGET_S, Screen, differs, wait_until
from tests.journeys.talking import connect, fixed_playback_buffer, live_sessions, say_and_listen

# The Conversation box, from the window's top-left corner (found on a screenshot).
TRANSCRIPT = (650, 122, 400, 410)


def test_a_live_conversation_is_heard_and_hold_to_talk_holds(
    launch: Launch, screen: Screen, tmp_path: Path
) -> None:
    wav, sentence = speak(tmp_path)
    app = launch(data_dir=fixed_playback_buffer(tmp_path / "data"))
    window = app.window()
    url = app.gateway_url()
    screen.focus(window)
    x, y, _w, _h = screen.geometry(window)
    transcript = (x + TRANSCRIPT[0], y + TRANSCRIPT[1], *TRANSCRIPT[2:])
    screen.key("ctrl+2")
    # The virtual sound card is a pair of headphones: nothing the speaker plays reaches the
    # microphone, and echo cancellation (its own journey in the audio tier) is not needed.
    screen.key("alt+p")
    idle = screen.shot("talk-idle")
    button = connect(screen, window)
    wait_until(lambda: live_sessions(url) or None, "a live conversation through the gateway")
    app.wait_log("Connected to ws://")  # the model's handshake: from now on it listens

    heard = say_and_listen(wav, tmp_path, "open")
    echo = locate(heard, sentence)
    assert echo.envelope_corr > 0.7, f"the sentence did not come back: {echo}"
    assert echo.spectral_corr > 0.5, f"what came back does not sound like it: {echo}"
    talking = screen.shot("talk", region=screen.geometry(window))
    assert differs(idle, talking, transcript), "the transcript shows no words"

    screen.key("alt+t")  # Hold to talk, mid-call
    time.sleep(0.5)  # let the last echo drain before listening for silence
    silent = say_and_listen(wav, tmp_path, "released")
    assert float(np.max(np.abs(silent))) < 0.02, "the model heard me while nothing was held"

    screen.key_down("space")
    try:
        held = say_and_listen(wav, tmp_path, "held")
    finally:
        screen.key_up("space")
    echo = locate(held, sentence)
    assert echo.envelope_corr > 0.7, f"held, the sentence did not come back: {echo}"

    screen.key("alt+u")  # Hang up
    wait_until(lambda: not live_sessions(url) or None, "the conversation to end")
    connect(screen, window, like=button)
    wait_until(lambda: live_sessions(url) or None, "a second call")
    assert app.stop(signal.SIGTERM) < EXIT_BUDGET_S  # mid-call
