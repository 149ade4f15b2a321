"""A room with an echo, on the virtual sound card: what the speaker plays reaches the microphone.

PulseAudio's ``module-loopback`` from ``spk.monitor`` into the ``mic`` sink is the acoustic path
of a laptop playing through its own speakers (ARCHITECTURE.md): the microphone hears the user
(played into ``mic``) and, ``latency_msec`` later, the model. A live Conversation runs on the
default devices through our gateway to pplex-sim, which echoes what it hears ``echo_frames``
later, with the recording on: its left channel is what the model heard (after cancellation),
its right what the speaker played. Used by the audio tier and by ``bench/echo.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from pplex_desktop.audio.conversation import (
    Conversation,
    ConversationConfig,
    ConversationEvent,
    ConversationState,
    EchoHeard,
    RecordingSaved,
    StateChanged,
)
from pplex_desktop.audio.echo import EchoSettings
from pplex_desktop.audio.portaudio import SoundDeviceDuplex
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.server import GatewayRunner
from pplex_desktop.moshi.audiofile import write_wav
from pplex_desktop.sim.sim import SimConfig, SimServer
from tests.audio import pulse

RATE = 24_000
Pcm = npt.NDArray[np.float32]
LIVE_TIMEOUT_S = 20.0


@contextlib.contextmanager
def room(latency_ms: int) -> Iterator[None]:
    """The speaker heard by the microphone ``latency_ms`` later, at full level."""
    done = pulse.pactl(
        "load-module",
        "module-loopback",
        "source=spk.monitor",
        "sink=mic",
        f"latency_msec={latency_ms}",
        "source_dont_move=true",
        "sink_dont_move=true",
    )
    module = done.stdout.strip()
    try:
        yield
    finally:
        pulse.pactl("unload-module", module, check=False)


def babble(seconds: float, seed: int, level: float = 0.1) -> Pcm:
    """Noise with a syllable-like envelope: wideband like speech, never periodic."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    env = (0.5 + 0.5 * np.sin(2 * np.pi * 3.3 * np.arange(n) / RATE + seed)) ** 2
    return (level * env * rng.standard_normal(n)).astype(np.float32)


@dataclass
class Call:
    data: npt.NDArray[np.float32]  # the recording: left heard by the model, right played
    echo_heard: list[EchoHeard]


class Gateway:
    """pplex-sim behind a GatewayRunner on a thread of their own, as in the app."""

    def __init__(self, folder: Path, echo_frames: int) -> None:
        self.thread = LoopThread("echo-room-gateway")
        self.store = KeyStore(folder / "keys.sqlite3")
        self.sim = SimServer(SimConfig(echo_delay_frames=echo_frames))
        self.runner: GatewayRunner | None = None
        self.url = ""
        self.key = ""

    def __enter__(self) -> Gateway:
        self.thread.start()
        sim_url = self.thread.run(self.sim.start("127.0.0.1", 0), timeout=10)
        settings = Settings(host="127.0.0.1", port=0, backends=(BackendConfig(sim_url),))
        self.runner = GatewayRunner(settings, self.store)
        self.url = self.thread.run(self.runner.start(), timeout=10).url
        self.key = self.store.create("echo-room").key
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.thread.running:
            if self.runner is not None:
                self.thread.run(self.runner.stop(), timeout=15)
            self.thread.run(self.sim.stop(), timeout=15)
            self.thread.stop()
        self.store.close()


async def call(
    gateway: Gateway, settings: EchoSettings, script: Pcm, tail_s: float, folder: Path
) -> Call:
    """Say ``script`` into the room's microphone during a live call, listen ``tail_s`` more."""
    wav = _script_file(folder, script)
    live, ended = asyncio.Event(), asyncio.Event()
    saved: list[RecordingSaved] = []
    heard: list[EchoHeard] = []
    failure: list[str] = []

    def listen(event: ConversationEvent) -> None:
        if isinstance(event, StateChanged):
            if event.state is ConversationState.LIVE:
                live.set()
            elif event.state.finished:
                if event.detail != "You hung up.":
                    failure.append(event.detail)
                ended.set()
                live.set()
        elif isinstance(event, RecordingSaved):
            saved.append(event)
        elif isinstance(event, EchoHeard):
            heard.append(event)

    config = ConversationConfig(
        url=gateway.url,
        text_prompt="Echo me.",
        voice_prompt="NATF1.pt",
        api_key=gateway.key,
        record=True,
        recordings_dir=folder,
        echo=settings,
    )
    conversation = Conversation(config, SoundDeviceDuplex(jitter_target_ms=160), listen)
    task = asyncio.create_task(conversation.run())
    try:
        await asyncio.wait_for(live.wait(), LIVE_TIMEOUT_S)
        if failure:
            raise AssertionError(f"The call did not go live: {failure[0]}")
        player = await asyncio.create_subprocess_exec("paplay", "--device=mic", str(wav))
        assert await asyncio.wait_for(player.wait(), len(script) / RATE + 20) == 0
        await asyncio.sleep(tail_s)  # the model's answers are still coming: the call's length
    finally:
        await conversation.hang_up()
        await asyncio.wait_for(task, 15)
    assert not failure, failure
    assert saved, "the recording was saved"
    data, rate = sf.read(str(saved[0].recording.wav_path), dtype="float32")
    assert rate == RATE
    return Call(np.asarray(data, dtype=np.float32), heard)


def _script_file(folder: Path, script: Pcm) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "script.wav"
    write_wav(wav, script)
    return wav


def onset(x: Pcm, threshold: float = 0.02) -> float:
    """Seconds to the first sample above ``threshold``."""
    above = np.flatnonzero(np.abs(x) > threshold)
    if not above.size:
        raise AssertionError("no sound at all where some was expected")
    return float(above[0]) / RATE


def level_db(x: Pcm, start_s: float, end_s: float) -> float:
    part = x[max(0, round(start_s * RATE)) : round(end_s * RATE)].astype(np.float64)
    return float(10 * np.log10(max(float(np.mean(part**2)) if part.size else 0.0, 1e-14)))
