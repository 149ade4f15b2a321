"""Journey 4: a recording that is true.

With "Record this conversation" on, a call on the demo backend hears a train of chirps played
into the virtual microphone; midway the talk mode is switched to Hold to talk (Space held),
then back to Open mic. After Hang up, the stereo WAV's right channel (the model, as played)
must trail the left (the user, as the model heard it) by the delay the app measured live,
within 20 ms, from the first second of sound to the last. The live delay is read where anyone
can read it: the recording's JSON sidecar lists it, about twice a second, on the WAV's own
timeline. The demo backend answers with an echo 320 ms after it heard the sound, which the
check allows for.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from pplex_desktop.moshi.audiofile import write_wav
from tests.audio.analysis import RATE
from tests.conversation_helpers import (
    assert_lags_follow_the_live_delay,
    delay_lags,
    sidecar_delays,
)
from tests.journeys.conftest import Launch
from tests.journeys.harness import Screen, wait_until
from tests.journeys.talking import ECHO_TAIL_S, connect, fixed_playback_buffer, live_sessions
from tests.signals import chirp_train

SECONDS = 8.0
TOLERANCE_MS = 20.0
MIC_CLOCK_SETTLES_S = 3.0
# The demo backend echoes what it hears four frames (320 ms) later, as a model answers some
# time after it heard you: the live delay runs from a frame sent to the model's frame for it.
DEMO_ECHO_S = 4 * 0.08


def finished_recording(folder: Path) -> Path | None:
    """The recording's sidecar once the app has closed it (it says so itself)."""
    for path in folder.glob("*.json"):
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("complete") is True:
                return path
        except (OSError, ValueError):
            continue  # being replaced right now: look again
    return None


def test_the_recording_trails_by_the_live_delay_through_a_mode_switch(
    launch: Launch, screen: Screen, tmp_path: Path
) -> None:
    chirps = tmp_path / "chirps.wav"
    # Silence after the chirps keeps the stream into the virtual microphone going meanwhile: when
    # it ends, the null sink's monitor delivers its last ~75 ms early, a jump of the virtual
    # microphone's clock that no real one has.
    write_wav(chirps, np.concatenate([chirp_train(SECONDS), np.zeros(2 * RATE, np.float32)]))
    app = launch(data_dir=fixed_playback_buffer(tmp_path / "data"))
    window = app.window()
    url = app.gateway_url()
    screen.focus(window)
    screen.key("ctrl+2", "alt+r")  # the Talk page; Record this conversation
    connect(screen, window)
    wait_until(lambda: live_sessions(url) or None, "a live conversation through the gateway")
    app.wait_log("Connected to ws://")
    app.wait_log("Recording the conversation to ")
    # The call's first seconds are not what this journey judges: the microphone's clock settles
    # then (README, Known limits) and the first echoes come back while the buffer fills, so the
    # first second of sound may have no stretch to judge. Speak once 3 s of the microphone have
    # reached the model, as the gateway counts it.
    wait_until(
        lambda: (
            any(float(str(s["audio_in_s"])) >= MIC_CLOCK_SETTLES_S for s in live_sessions(url))
            or None
        ),
        f"{MIC_CLOCK_SETTLES_S:g} s of the microphone to reach the model",
    )

    player = subprocess.Popen(["paplay", "--device=mic", str(chirps)])
    try:
        # The app's clock is not visible from outside; the switches only need to land midway.
        time.sleep(2.5)
        screen.key("alt+t")  # Hold to talk
        time.sleep(0.3)  # Alt must be up when Space comes, or the focused button takes it
        screen.key_down("space")  # and talking in it
        try:
            time.sleep(2.2)
        finally:
            screen.key_up("space")
        screen.key("alt+m")  # back to Open mic
        assert player.wait(SECONDS + 30) == 0
    finally:
        if player.poll() is None:
            player.kill()
            player.wait(5)
    time.sleep(ECHO_TAIL_S)  # the last chirps are still on their way back
    screen.key("alt+u")  # Hang up
    recordings = app.data_dir / "recordings"
    sidecar = wait_until(lambda: finished_recording(recordings), "the recording to be saved")

    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    data, rate = sf.read(str(recordings / meta["wav"]), dtype="float32")
    assert rate == RATE and data.shape[1] == 2
    delays = sidecar_delays(sidecar)
    assert len(delays) >= 2 * SECONDS, f"the sidecar lists too few live delays: {delays}"
    lags = delay_lags(data, delays, model_s=DEMO_ECHO_S)
    assert_lags_follow_the_live_delay(data, lags, TOLERANCE_MS)
