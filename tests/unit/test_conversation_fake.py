"""The Conversation driven frame by frame through a fake device, against pplex-sim.

The device is fake (no sound card), the server is pplex-sim over a real socket: the frames the
push-to-talk gate lets through are counted and heard on the server side.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import web

from pplex_desktop.audio.conversation import (
    CODEC_DELAY_S,
    Conversation,
    ConversationConfig,
    ConversationState,
    RecordingSaved,
    close_outcome,
)
from pplex_desktop.audio.fake import FakeDuplexDevice
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.core.clock import FakeClock
from pplex_desktop.moshi import protocol as proto
from pplex_desktop.moshi.codec import FRAME_SAMPLES, FRAME_SECONDS
from pplex_desktop.sim.sim import SimConfig, SimServer
from tests.conversation_helpers import EventLog, delay_lags, recording_lags, sidecar_delays
from tests.signals import chirp_train, rms, tone

F = FRAME_SAMPLES
S = ConversationState
PROMPT = "You enjoy short answers."
Factory = Callable[..., Awaitable[SimServer]]


class StatusSim(SimServer):
    """pplex-sim plus the gateway's queue and status messages before the handshake."""

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, query: dict[str, str]
    ) -> None:
        if query.get("pplex_status") == "1":
            for data in (
                {"type": "queue", "position": 2, "eta_s": 30.0},
                {"type": "queue", "position": 1, "eta_s": 12.5},
                {"type": "status", "state": "connecting"},
                {"type": "status", "state": "preparing"},
            ):
                await ws.send_bytes(proto.encode(proto.Metadata(data)))
        await super()._serve(request, ws, query)


@pytest.fixture
async def make_sim() -> AsyncIterator[Factory]:
    servers: list[SimServer] = []

    async def factory(cls: type[SimServer] = SimServer, **config: Any) -> SimServer:
        server = cls(SimConfig(**config))
        await server.start("127.0.0.1", 0)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()


def config(sim: SimServer, **overrides: Any) -> ConversationConfig:
    values: dict[str, Any] = {
        "url": sim.url,
        "text_prompt": PROMPT,
        "voice_prompt": "NATF2.pt",
        "handshake_timeout": 10.0,
    }
    values.update(overrides)
    return ConversationConfig(**values)


def blocks(pcm: np.ndarray, sizes: tuple[int, ...] = (700, 1_100, 1_920, 333)) -> list[np.ndarray]:
    """Cut audio into irregular blocks, as a real microphone callback may deliver it."""
    out, i, k = [], 0, 0
    while i < len(pcm):
        n = sizes[k % len(sizes)]
        out.append(pcm[i : i + n])
        i, k = i + n, k + 1
    return out


async def start(conv: Conversation, log: EventLog) -> asyncio.Task[ConversationState]:
    task = asyncio.create_task(conv.run())
    await log.wait_for(lambda: S.LIVE in log.states or conv.state.finished)
    return task


async def test_tone_in_tone_out_with_text_and_states(make_sim: Factory) -> None:
    sim = await make_sim(echo_delay_frames=0)
    # One clock for the device and the conversation: 80 ms pass per frame, as on a sound card.
    clock = FakeClock()
    device = FakeDuplexDevice(clock=clock)
    log = EventLog()
    conv = Conversation(config(sim, record=True), device, log, clock=clock)
    task = await start(conv, log)
    assert device.started
    x = tone(440, 40 * F / 24_000)
    played = []
    for i in range(40):
        clock.advance(FRAME_SECONDS)  # frame i has been spoken
        device.inject(x[i * F : (i + 1) * F])
        await device.wait_received((i + 1) * F)  # lockstep: the answer is in before we play
        played.append(device.pull(F))  # heard from now
    await conv.hang_up()
    await task
    y = np.concatenate(played)
    # One frame of prebuffer silence, then the answers delayed by one frame.
    assert not y[:F].any()
    np.testing.assert_allclose(y[2 * F : 3 * F], device.received_pcm()[F : 2 * F])
    assert rms(y[3 * F :]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(y[3 * F :]))
    assert np.argmax(spectrum) * 24_000 / len(y[3 * F :]) == pytest.approx(440, abs=3)

    assert log.states == [S.CONNECTING, S.LIVE, S.ENDED]
    assert log.final.detail == "You hung up."
    assert device.stopped
    assert sim.stats.frames_in == 40
    # The sim speaks one word of the prompt every three frames.
    assert "".join(t.text for t in log.texts) == " You enjoy short answers."
    times = [t.t for t in log.texts]
    assert times == sorted(times)
    stats = conv.stats()
    assert stats.frames_sent == 40 and stats.frames_received == 40
    assert stats.underruns == 0 and stats.dropped_ms == 0
    assert stats.rtt_ms is not None  # the network takes no time on a clock that stands still
    # Frame 0 was spoken from 0 ms; its answer played from 160 ms (one frame to complete it,
    # one of prebuffer), plus Opus's lookahead both ways: the delay shown live.
    assert stats.delay_ms == pytest.approx(1000 * (0.16 + CODEC_DELAY_S), abs=0.1)
    assert log.stats, "stats are reported while live"
    loud = [lv for lv in log.levels if lv.input_rms > 0.3]
    assert loud and all(lv.input_peak == pytest.approx(0.5, abs=0.01) for lv in loud)
    assert any(lv.output_rms > 0.3 for lv in log.levels)

    # The recording: left what was sent, right what was played, timed text.
    saved = [e for e in log.events if isinstance(e, RecordingSaved)]
    assert len(saved) == 1
    info = saved[0].recording
    data, rate = sf.read(str(info.wav_path), dtype="float32")
    # Both on one timeline: the voice from 0, what played from the end of the first frame.
    assert rate == 24_000 and data.shape == (41 * F, 2)
    np.testing.assert_allclose(data[: 40 * F, 0], x, atol=1e-4)
    np.testing.assert_allclose(data[F:, 1], y, atol=1e-4)
    assert not data[:F, 1].any() and not data[40 * F :, 0].any()
    meta = json.loads(info.json_path.read_text())
    assert meta["persona"] == PROMPT and meta["voice"] == "NATF2.pt"
    assert [p["text"] for p in meta["transcript"]] == [t.text for t in log.texts]
    assert [p["t"] for p in meta["transcript"]] == pytest.approx(times, abs=2e-3)


async def test_the_recording_keeps_both_sides_on_one_clock(make_sim: Factory) -> None:
    """Through a stalled speaker (400 ms not played, as in an ALSA underrun) and a switch of
    talk mode, the right channel trails the left by the delay measured live, start to end."""
    sim = await make_sim(echo_delay_frames=0)
    clock = FakeClock()
    device = FakeDuplexDevice(clock=clock)
    log = EventLog()
    conv = Conversation(config(sim, record=True), device, log, clock=clock)
    task = await start(conv, log)
    frames = 75
    x = chirp_train(frames * F / 24_000)
    for i in range(frames):
        if i == 40:
            conv.set_ptt_mode(PttMode.HOLD)
        if i == 45:
            conv.press()  # the released frames in between are silence, recorded as such
        clock.advance(FRAME_SECONDS)
        device.inject(x[i * F : (i + 1) * F])
        await device.wait_received((i + 1) * F)
        if not 20 <= i < 25:  # the speaker stalls for five frames
            device.pull(F)
    await conv.hang_up()
    await task
    info = next(e for e in log.events if isinstance(e, RecordingSaved)).recording
    data, _ = sf.read(str(info.wav_path), dtype="float32")
    assert not data[41 * F : 45 * F, 0].any(), "the model heard silence while the key was up"
    # The analysis is the test's own CPU work: off the loop, as the harness asks.
    lags = await asyncio.to_thread(recording_lags, data, log.stats)
    assert len(lags) >= 7 and lags[0][0] < 1.0 and lags[-1][0] > 4.5, lags
    for at, lag, low, high in lags:
        assert low - 20 <= lag <= high + 20, f"off at {at:.1f} s: {lags}"
    # The stall really changed the delay (the buffer held more), and the recording followed.
    assert max(h for *_, h in lags) - min(lo for *_, lo, _h in lags) > 40
    # The sidecar lists the same figures, on the WAV's own timeline, for checks from outside.
    listed = sidecar_delays(info.json_path)
    live = [(st.session_s, st.delay_ms) for st in log.stats if st.delay_ms is not None]
    assert len(listed) == len(live)
    for (t, d), (session_s, delay_ms) in zip(listed, live, strict=True):
        assert d == delay_ms and t == pytest.approx(session_s, abs=2e-3)
    assert await asyncio.to_thread(delay_lags, data, listed) == lags


async def test_sound_lost_on_the_way_is_said_in_the_log(
    make_sim: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A speaker that stalls, then asks faster than the model answers: the log says that audio
    was dropped and that the speaker ran dry, once per stats period, not per block."""
    sim = await make_sim(echo_delay_frames=0)
    clock = FakeClock()
    device = FakeDuplexDevice(clock=clock)
    log = EventLog()
    conv = Conversation(config(sim), device, log, clock=clock)
    task = await start(conv, log)
    frames = 36
    x = tone(300, frames * F / 24_000, amplitude=0.4)
    with caplog.at_level(logging.WARNING, logger="pplex_desktop.audio.conversation"):
        for i in range(frames):
            clock.advance(FRAME_SECONDS)
            device.inject(x[i * F : (i + 1) * F])
            await device.wait_received((i + 1) * F)
            if i < 12:
                device.pull(F)
            elif i >= 18:  # after a stall of six frames, twice as fast as the model
                device.pull(2 * F)
        await conv.hang_up()
        await task
    said = [r.getMessage() for r in caplog.records]
    stats = conv.stats()
    assert stats.dropped_ms > 0 and stats.underruns > 0
    dropped = [m for m in said if "were dropped to stay on time" in m]
    dry = [m for m in said if m.startswith("The speaker ran dry")]
    assert dropped and dry, said
    assert len(dry) <= frames // 6, "once per stats period at most"
    assert not [m for m in said if "microphone lost" in m], "the microphone lost nothing"


async def _talk(
    sim: SimServer, ptt: PushToTalk, actions: dict[int, Callable[[Conversation], None]]
) -> tuple[np.ndarray, Conversation]:
    """Send 16 frames of tone in irregular blocks; before frame k, run ``actions[k]``."""
    device = FakeDuplexDevice()
    log = EventLog()
    conv = Conversation(config(sim), device, log, ptt=ptt)
    task = await start(conv, log)
    x = tone(300, 16 * F / 24_000, amplitude=0.4)
    edges = sorted({0, 16, *actions})
    for a, b in itertools.pairwise(edges):
        if a in actions:
            actions[a](conv)
        for block in blocks(x[a * F : b * F]):
            device.inject(block)
        # The gate decides as each frame is cut: wait for the model's answer to frame b
        # (pplex-sim answers every frame) before the next key action.
        await device.wait_received(b * F)
    await device.wait_received(16 * F)
    await conv.hang_up()
    await task
    assert sim.stats.frames_in == 16, "one frame per 80 ms of microphone, talking or not"
    assert conv.stats().frames_sent == 16
    return device.received_pcm(), conv


def frame_levels(y: np.ndarray) -> list[float]:
    return [rms(y[k * F : (k + 1) * F]) for k in range(len(y) // F)]


def loud(levels: list[float], frames: range) -> bool:
    return all(levels[k] > 0.2 for k in frames)


def silent(levels: list[float], frames: range) -> bool:
    return all(levels[k] < 0.01 for k in frames)


async def test_open_mode_sends_everything(make_sim: Factory) -> None:
    sim = await make_sim()
    y, _ = await _talk(sim, PushToTalk(PttMode.OPEN), {})
    assert loud(frame_levels(y), range(1, 16))


async def test_hold_mode_sends_silence_frames_while_released(make_sim: Factory) -> None:
    sim = await make_sim()
    y, _ = await _talk(
        sim,
        PushToTalk(PttMode.HOLD),
        {5: Conversation.press, 10: Conversation.release},
    )
    levels = frame_levels(y)
    # A frame on each side of a switch may carry the codec's transition.
    assert silent(levels, range(4))
    assert loud(levels, range(6, 10))
    assert silent(levels, range(11, 16))


async def test_toggle_mode_flips_on_presses(make_sim: Factory) -> None:
    sim = await make_sim()

    def tap(conv: Conversation) -> None:
        conv.press()
        conv.release()

    y, _ = await _talk(sim, PushToTalk(PttMode.TOGGLE), {4: tap, 10: tap})
    levels = frame_levels(y)
    assert silent(levels, range(3))
    assert loud(levels, range(5, 10))
    assert silent(levels, range(11, 16))


async def test_ducking_and_mute_set_the_speaker_gain(make_sim: Factory) -> None:
    sim = await make_sim()
    device = FakeDuplexDevice()
    log = EventLog()
    conv = Conversation(config(sim), device, log, ptt=PushToTalk(PttMode.HOLD, duck_gain=0.3))
    task = await start(conv, log)
    assert device.jitter.gain == 1.0
    conv.press()
    device.inject(tone(300, F / 24_000, amplitude=0.4))
    await device.wait_received(F)
    assert device.jitter.gain == pytest.approx(0.3), "ducked while the user speaks"
    conv.release()
    assert device.jitter.gain == 1.0
    conv.set_speaker_muted(True)
    assert device.jitter.gain == 0.0
    await conv.hang_up()
    await task


async def test_gateway_status_messages_become_states(make_sim: Factory) -> None:
    sim = await make_sim(StatusSim)
    log = EventLog()
    conv = Conversation(config(sim), FakeDuplexDevice(), log)
    task = await start(conv, log)
    await conv.hang_up()
    await task
    assert sim.stats.queries[0]["pplex_status"] == "1"
    events = log.state_events
    assert [e.state for e in events] == [
        S.CONNECTING,
        S.QUEUED,
        S.QUEUED,
        S.CONNECTING,
        S.PREPARING,
        S.LIVE,
        S.ENDED,
    ]
    assert (events[1].queue_position, events[1].eta_s) == (2, 30.0)
    assert (events[2].queue_position, events[2].eta_s) == (1, 12.5)


async def test_status_messages_are_not_asked_for_when_disabled(make_sim: Factory) -> None:
    sim = await make_sim(StatusSim)
    log = EventLog()
    conv = Conversation(config(sim, request_status=False), FakeDuplexDevice(), log)
    task = await start(conv, log)
    await conv.hang_up()
    await task
    assert "pplex_status" not in sim.stats.queries[0]
    assert log.states == [S.CONNECTING, S.LIVE, S.ENDED]


async def test_hang_up_while_the_server_prepares(make_sim: Factory) -> None:
    sim = await make_sim(prompt_delay_s=60.0)
    log = EventLog()
    device = FakeDuplexDevice()
    conv = Conversation(config(sim), device, log)
    task = asyncio.create_task(conv.run())
    await sim.wait_until(lambda s: len(s.queries) == 1)
    await conv.hang_up()
    assert await task is S.ENDED
    assert log.states == [S.CONNECTING, S.ENDED]
    assert "before the conversation started" in log.final.detail
    assert device.stopped


async def test_refused_prompt_is_an_error(make_sim: Factory) -> None:
    sim = await make_sim()
    log = EventLog()
    conv = Conversation(config(sim, voice_prompt="NOPE.pt"), FakeDuplexDevice(), log)
    assert await conv.run() is S.ERROR
    assert log.states == [S.CONNECTING, S.ERROR]
    assert "before the handshake" in log.final.detail


async def test_model_failure_is_an_error(make_sim: Factory) -> None:
    sim = await make_sim(error_after_frames=3)
    log = EventLog()
    device = FakeDuplexDevice()
    conv = Conversation(config(sim), device, log)
    task = await start(conv, log)
    for block in blocks(tone(300, 5 * F / 24_000)):
        device.inject(block)
    assert await task is S.ERROR
    assert log.final.detail == "The server reported an error: simulated model failure"


async def test_lost_connection_is_an_error(make_sim: Factory) -> None:
    sim = await make_sim(close_after_frames=2)
    log = EventLog()
    device = FakeDuplexDevice()
    conv = Conversation(config(sim), device, log)
    task = await start(conv, log)
    for block in blocks(tone(300, 4 * F / 24_000)):
        device.inject(block)
    assert await task is S.ERROR
    assert log.final.detail.startswith("The connection to the server was lost")


async def test_server_unreachable_is_an_error() -> None:
    log = EventLog()
    cfg = ConversationConfig(url="ws://127.0.0.1:9/", text_prompt="x", voice_prompt="NATF0.pt")
    device = FakeDuplexDevice()
    assert await Conversation(cfg, device, log).run() is S.ERROR
    assert log.final.detail.startswith("Could not connect")
    assert device.stopped


async def test_unplugged_microphone_ends_the_call_with_its_reason(make_sim: Factory) -> None:
    sim = await make_sim()
    log = EventLog()
    device = FakeDuplexDevice()
    conv = Conversation(config(sim), device, log)
    task = await start(conv, log)
    device.inject(np.zeros(F, np.float32))
    device.unplug()
    assert await task is S.ERROR
    assert log.final.detail == "The simulated microphone was unplugged."
    await sim.wait_until(lambda s: s.sessions_finished == 1)


async def test_audio_captured_while_connecting_is_not_sent(make_sim: Factory) -> None:
    sim = await make_sim()
    device = FakeDuplexDevice()
    log = EventLog()
    conv = Conversation(config(sim), device, log)
    # Queued before the handshake: the model must never hear this stale second.
    for block in blocks(tone(300, 1.0)):
        device.inject(block)
    task = await start(conv, log)
    device.inject(np.zeros(F, np.float32))
    await device.wait_received(F)
    await conv.hang_up()
    await task
    assert sim.stats.frames_in == 1
    assert rms(device.received_pcm()) < 0.01


async def test_a_conversation_runs_once(make_sim: Factory) -> None:
    sim = await make_sim()
    log = EventLog()
    conv = Conversation(config(sim), FakeDuplexDevice(), log)
    task = await start(conv, log)
    with pytest.raises(RuntimeError, match="runs once"):
        await conv.run()
    await conv.hang_up()
    await task


@pytest.mark.parametrize(
    ("code", "reason", "state", "sentence"),
    [
        (
            1001,
            "The gateway is shutting down.",
            S.ENDED,
            "The conversation ended: the gateway is shutting down.",
        ),
        (
            1001,
            "",
            S.ENDED,
            "The conversation ended because the server is stopping or restarting.",
        ),
        (1000, "", S.ENDED, "The server ended the conversation."),
        (
            1000,
            "The model server ended the session",
            S.ENDED,
            "The conversation ended: the model server ended the session.",
        ),
        (
            1008,
            "An administrator ended the session.",
            S.ERROR,
            "The conversation was cut off (close code 1008): an administrator ended the session.",
        ),
        (1006, "", S.ERROR, "The connection to the server was lost (close code 1006)."),
        (None, "", S.ERROR, "The connection to the server was lost."),
    ],
)
def test_a_close_from_the_server_says_why(
    code: int | None, reason: str, state: ConversationState, sentence: str
) -> None:
    assert close_outcome(code, reason) == (state, sentence)
