"""Journey 3: a live conversation on the Talk page, heard through the virtual sound card.

The demo backend echoes the caller's voice: a sentence played into the virtual microphone must
come out of the virtual speaker. In Hold-to-talk it must not while nothing is held, and must
while Space is held. The transcript fills with words; SIGTERM mid-call still exits in time.

A loaded machine can stall the app for half a second: the model's audio then comes late, the
fixed 160 ms buffer runs dry and drops what piled up, and a word of the echo is lost (seen once in
a soak, two underruns, a match of 0.58). The app says so in its log; a sentence that did not come
back while the app logged lost sound is said once more, as a person who heard it cut out would.
A sentence that did not come back with no sound lost fails at once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.audio.analysis import Match, Pcm, locate
from tests.audio.test_live_devices import speak
from tests.journeys.conftest import Launch
from tests.journeys.harness import EXIT_BUDGET_S, App, Screen, differs, wait_until
from tests.journeys.talking import (
    connect,
    fixed_playback_buffer,
    live_sessions,
    say_and_listen,
    sound_lost,
)

# The Conversation box, from the window's top-left corner (found on a screenshot).
TRANSCRIPT = (650, 122, 400, 410)
CAME_BACK = 0.7  # envelope match of the echo with the sentence said


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

    echo = echo_of(app, lambda: say_and_listen(wav, tmp_path, "open"), sentence)
    assert echo.envelope_corr > CAME_BACK, f"the sentence did not come back: {echo}"
    assert echo.spectral_corr > 0.5, f"what came back does not sound like it: {echo}"
    talking = screen.shot("talk", region=screen.geometry(window))
    assert differs(idle, talking, transcript), "the transcript shows no words"

    screen.key("alt+t")  # Hold to talk, mid-call
    time.sleep(0.5)  # let the last echo drain before listening for silence
    silent = say_and_listen(wav, tmp_path, "released")
    assert float(np.max(np.abs(silent))) < 0.02, "the model heard me while nothing was held"

    def say_held() -> Pcm:
        screen.key_down("space")
        try:
            return say_and_listen(wav, tmp_path, "held")
        finally:
            screen.key_up("space")

    echo = echo_of(app, say_held, sentence)
    assert echo.envelope_corr > CAME_BACK, f"held, the sentence did not come back: {echo}"

    screen.key("alt+u")  # Hang up
    wait_until(lambda: not live_sessions(url) or None, "the conversation to end")
    connect(screen, window, like=button)
    wait_until(lambda: live_sessions(url) or None, "a second call")
    assert app.stop(signal.SIGTERM) < EXIT_BUDGET_S  # mid-call


def echo_of(app: App, say: Callable[[], Pcm], sentence: Pcm) -> Match:
    """Where the sentence ``say`` makes the speaker play back sits, and how alike; said once
    more only if it did not come back while the app logged that it lost sound."""
    for _attempt in range(2):
        mark = len(app.log())
        echo = locate(say(), sentence)
        lost = sound_lost(app.log()[mark:])
        if echo.envelope_corr > CAME_BACK or not lost:
            break
        print(f"\nThe echo did not come back ({echo}); the app said: {lost[0]} Saying it again.")
    return echo
