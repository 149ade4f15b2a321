"""A recording that is true: the Talk page's session on real (virtual) sound devices, through
our real gateway to pplex-sim echoing at once, with "Record this conversation" on.

A train of chirps is played into the virtual microphone for several seconds. Midway the talk
mode is switched (to toggle, talking, then back to open mic), and the test's own thread holds
the GIL for a while, as a busy window does, which makes the sound system skip. Whatever
happens, the WAV's right channel (the model, as played) must trail the left (the user, as the
model heard it) by the delay the session measured live, as the sidecar lists it, within 20 ms,
from the first second of sound to the last.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf
from pytestqt.qtbot import QtBot

from pplex_desktop.audio.conversation import ConversationConfig
from pplex_desktop.audio.events import ConversationState, SessionStats
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.audio.recorder import RecordingInfo
from pplex_desktop.desktop.live_audio import SoundDeviceAudio
from pplex_desktop.moshi.audiofile import write_wav
from pplex_desktop.ui.talk.live_session import LiveSession
from tests.audio.analysis import RATE
from tests.audio.test_live_through_gateway import WAIT_MS, LoopGateway, gateway  # noqa: F401
from tests.conversation_helpers import (
    assert_lags_follow_the_live_delay,
    delay_lags,
    sidecar_delays,
)
from tests.signals import chirp_train

S = ConversationState
SECONDS = 8.0
TOLERANCE_MS = 20.0
pytestmark = pytest.mark.usefixtures("pulse_devices")


def hold_the_gil(seconds: float) -> None:
    """Keep every other thread of this process, PortAudio's callbacks too, waiting."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sorted(range(100_000, 0, -1))  # list.sort never lets go of the GIL


def test_the_recording_trails_by_the_live_delay_from_start_to_end(
    qtbot: QtBot,
    gateway: LoopGateway,  # noqa: F811
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    chirps = tmp_path / "chirps.wav"
    write_wav(chirps, chirp_train(SECONDS))
    session = LiveSession(SoundDeviceAudio())
    stats: list[SessionStats] = []
    saved: list[RecordingInfo] = []
    session.stats_arrived.connect(stats.append)
    session.recording_saved.connect(saved.append)
    try:
        config = ConversationConfig(
            url=gateway.url,
            text_prompt="Echo me.",
            voice_prompt="NATF1.pt",
            api_key=gateway.key,
            record=True,
            recordings_dir=tmp_path,
        )
        session.start(
            config,
            input_device=None,
            output_device=None,
            jitter_target_ms=160,
            ptt=PushToTalk(PttMode.OPEN),
        )
        qtbot.waitUntil(lambda: session.state is S.LIVE, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: bool(stats), timeout=WAIT_MS)
        player = subprocess.Popen(["paplay", "--device=mic", str(chirps)])
        begun = stats[-1].session_s if stats else 0.0

        def after(seconds: float) -> None:
            """Wait until the call's own clock (its stats) says ``seconds`` have passed."""
            qtbot.waitUntil(lambda: stats[-1].session_s >= begun + seconds, timeout=WAIT_MS)

        after(2.5)
        session.set_ptt_mode(PttMode.TOGGLE)
        session.press()  # talking in the new mode
        after(3.5)
        hold_the_gil(0.15)
        after(5.0)
        session.set_ptt_mode(PttMode.OPEN)
        qtbot.waitUntil(lambda: player.poll() is not None, timeout=WAIT_MS)
        assert player.returncode == 0
        after(SECONDS + 1.5)  # the last chirps come back
        with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
            session.hang_up()
        qtbot.waitUntil(lambda: bool(saved), timeout=WAIT_MS)
    finally:
        session.shutdown()
    data, rate = sf.read(str(saved[0].wav_path), dtype="float32")
    assert rate == RATE and data.shape[1] == 2
    # The sidecar's delays: the live ones, following a side the recorder moved into place.
    lags = delay_lags(data, sidecar_delays(saved[0].json_path))
    assert_lags_follow_the_live_delay(data, lags, TOLERANCE_MS)
    record_property("recording_lag_first_ms", lags[0][1])
    record_property("recording_lag_last_ms", lags[-1][1])
    record_property("live_delay_last_ms", stats[-1].delay_ms)
