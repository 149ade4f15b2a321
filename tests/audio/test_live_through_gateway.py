"""The Talk page's session on real sound devices, through our real gateway, to pplex-sim.

The same path the desktop user takes: the app's LiveSession (its own conversation thread) opens
the default PortAudio devices (PulseAudio null sinks here), connects to a GatewayRunner on
loopback with an owner-style key, and the gateway relays to pplex-sim, which echoes at once.
A spoken sentence played into the virtual microphone must come out of the virtual speaker;
with push-to-talk released it must not, although frames keep flowing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from pplex_desktop.app import OWNER_KEY_NAME, OWNER_MAX_SESSIONS, OWNER_RPM
from pplex_desktop.audio.conversation import ConversationConfig
from pplex_desktop.audio.events import ConversationState, Levels, SessionStats
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.core.keystore import KIND_OWNER, KeyStore
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.desktop.live_audio import SoundDeviceAudio
from pplex_desktop.gateway.server import GatewayRunner
from pplex_desktop.sim.sim import SimConfig, SimServer
from pplex_desktop.ui.talk.live_session import LiveSession
from tests.audio.analysis import RATE, Match, Pieces, locate, locate_pieces
from tests.audio.test_live_devices import Parec, speak

S = ConversationState
WAIT_MS = 20_000
pytestmark = pytest.mark.usefixtures("pulse_devices")


@dataclass
class LoopGateway:
    url: str
    key: str
    runner: GatewayRunner
    sim: SimServer
    thread: LoopThread

    def live_sessions(self) -> list[str]:
        """The key names of the gateway's live sessions, read on its own thread."""

        async def read() -> list[str]:
            assert self.runner.ctx is not None
            registry = self.runner.ctx.sessions
            return [s.key_name for s in registry.sessions.values() if s.state == "live"]

        return self.thread.run(read(), timeout=10)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[LoopGateway]:
    """pplex-sim (echo after 0 frames) behind a GatewayRunner, both on a thread of their own as
    in the app, so the Qt thread of the test stays free to deliver the session's signals."""
    thread = LoopThread("test-gateway")
    thread.start()
    store = KeyStore(tmp_path / "keys.sqlite3")
    sim = SimServer(SimConfig(echo_delay_frames=0))
    runner: GatewayRunner | None = None
    try:
        sim_url = thread.run(sim.start("127.0.0.1", 0), timeout=10)
        settings = Settings(host="127.0.0.1", port=0, backends=(BackendConfig(sim_url),))
        runner = GatewayRunner(settings, store)
        address = thread.run(runner.start(), timeout=10)
        key = store.create(
            OWNER_KEY_NAME, kind=KIND_OWNER, rpm=OWNER_RPM, max_sessions=OWNER_MAX_SESSIONS
        ).key
        yield LoopGateway(address.url, key, runner, sim, thread)
    finally:
        if runner is not None:
            thread.run(runner.stop(), timeout=10)
        thread.run(sim.stop(), timeout=10)
        thread.stop()
        store.close()


@dataclass
class Outcome:
    at_mouth: Match
    at_ear: Pieces  # piece by piece: an underrun on a loaded machine inserts a gap
    speaker: np.ndarray
    microphone: np.ndarray
    stats: SessionStats


def converse(qtbot: QtBot, gateway: LoopGateway, tmp_path: Path, mode: PttMode) -> Outcome:
    """Play the sentence into the microphone during a live conversation through the gateway."""
    wav, sentence = speak(tmp_path)
    session = LiveSession(SoundDeviceAudio())
    levels: list[Levels] = []
    stats: list[SessionStats] = []
    session.levels_arrived.connect(levels.append)
    session.stats_arrived.connect(stats.append)
    mouth = Parec("mic.monitor", tmp_path / "mic.raw")
    ear = Parec("spk.monitor", tmp_path / "spk.raw")
    try:
        config = ConversationConfig(
            url=gateway.url, text_prompt="Echo me.", voice_prompt="NATF1.pt", api_key=gateway.key
        )
        session.start(
            config,
            input_device=None,
            output_device=None,
            jitter_target_ms=160,
            ptt=PushToTalk(mode),
        )
        qtbot.waitUntil(lambda: session.state is S.LIVE, timeout=WAIT_MS)
        assert gateway.live_sessions() == [OWNER_KEY_NAME], "one session, through the gateway"
        qtbot.waitUntil(lambda: len(levels) >= 3, timeout=WAIT_MS)  # both streams run
        player = subprocess.Popen(["paplay", "--device=mic", str(wav)])
        qtbot.waitUntil(lambda: player.poll() is not None, timeout=WAIT_MS)
        assert player.returncode == 0
        heard = len(levels)
        qtbot.waitUntil(lambda: len(levels) >= heard + 8, timeout=WAIT_MS)  # the tail comes back
        qtbot.waitUntil(lambda: bool(stats), timeout=WAIT_MS)
        with qtbot.waitSignal(session.finished, timeout=WAIT_MS):
            session.hang_up()
        assert session.state is S.ENDED
    finally:
        session.shutdown()
        microphone, speaker = mouth.stop(), ear.stop()
    # No delay from these two: two parec processes start recording up to hundreds of
    # milliseconds apart, and nothing says by how much. The session measures its own delay on
    # one clock (test_recording_alignment.py checks it against the recording);
    # bench/mouth_to_ear.py measures mouth to ear from outside on one clock.
    return Outcome(
        locate(microphone, sentence),
        locate_pieces(speaker, sentence),
        speaker,
        microphone,
        stats[-1],
    )


def test_the_sentence_comes_back_through_the_gateway(
    qtbot: QtBot,
    gateway: LoopGateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    outcome = converse(qtbot, gateway, tmp_path, PttMode.OPEN)
    assert outcome.at_mouth.envelope_corr > 0.9, "the sentence reached the virtual microphone"
    assert outcome.at_ear.envelope_corr > 0.8, f"the sentence did not come back: {outcome.at_ear}"
    assert outcome.at_ear.spectral_corr > 0.6, f"it does not sound like it: {outcome.at_ear}"
    assert outcome.at_ear.in_order and not outcome.at_ear.missing, f"in order: {outcome.at_ear}"
    assert gateway.sim.stats.sessions_started == 1, "it went through the gateway to the sim"
    delay = outcome.stats.delay_ms
    assert delay is not None and 160 < delay < 1_000, "at least the 160 ms buffer, measured live"
    with capsys.disabled():
        print(
            f"\nvoice to echo through the gateway, measured live by the session: {delay:.0f} ms "
            f"(jitter target 160 ms; network and model {outcome.stats.rtt_ms} ms)"
        )
    record_property("live_delay_ms", delay)


def test_push_to_talk_released_keeps_the_sentence_from_the_model(
    qtbot: QtBot, gateway: LoopGateway, tmp_path: Path
) -> None:
    outcome = converse(qtbot, gateway, tmp_path, PttMode.HOLD)
    assert outcome.at_mouth.envelope_corr > 0.9, "the sentence reached the virtual microphone"
    spoken_s = len(outcome.microphone) / RATE
    assert outcome.stats.frames_sent >= 0.5 * spoken_s / 0.08, "silent frames kept flowing"
    assert gateway.sim.stats.frames_in >= outcome.stats.frames_sent - 2
    assert np.max(np.abs(outcome.speaker)) < 0.01, "nothing of the sentence came back"
