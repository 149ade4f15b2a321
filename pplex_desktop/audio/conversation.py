"""The live conversation: microphone → push-to-talk gate → model, model → jitter buffer → speaker.

It runs on one asyncio loop (the conversation thread) and reports to a listener with frozen
dataclasses; the listener is called on that loop and must be cheap (the UI bridge only queues a
Qt signal). Timing comes from the microphone: one frame goes out per 80 ms of audio the device
delivered, never from sleeps, because the model is clocked by its input (PROTOCOL.md).

The delay shown live is measured on the device's stamps: from the capture of the first sample
of frame n to the moment the first sample of the model's frame n (its answer) is heard. The
recording places both channels by the same stamps, so its right channel trails the left by
exactly that delay.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pplex_desktop.audio import audio_errors
from pplex_desktop.audio.duplex import DuplexDevice, Played
from pplex_desktop.audio.echo import ECHO_SENTENCE, EchoCanceller, EchoSettings
from pplex_desktop.audio.events import (
    ConversationEvent,
    ConversationState,
    EchoHeard,
    Levels,
    Listener,
    RecordingSaved,
    SessionStats,
    StateChanged,
    TextPiece,
)
from pplex_desktop.audio.meters import LevelMeter
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.audio.recorder import ConversationRecorder
from pplex_desktop.core.clock import Clock, SystemClock
from pplex_desktop.core.close_codes import CloseCode
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.redact import redact_text, redact_url
from pplex_desktop.moshi.client import (
    AudioEvent,
    ClosedEvent,
    ErrorEvent,
    MoshiSession,
    SessionClosedError,
    SessionOptions,
    TextEvent,
)
from pplex_desktop.moshi.codec import FRAME_SAMPLES, SAMPLE_RATE
from pplex_desktop.moshi.framing import Framer

__all__ = [
    "Conversation",
    "ConversationConfig",
    "ConversationEvent",
    "ConversationState",
    "EchoHeard",
    "EchoSettings",
    "Levels",
    "Listener",
    "RecordingSaved",
    "SessionStats",
    "StateChanged",
    "TextPiece",
]

_log = logging.getLogger(__name__)
STATS_EVERY_FRAMES = 6  # about twice a second
_RTT_SMOOTHING = 0.2
# Opus delays what it decodes by its lookahead (6.4 ms at 24 kHz, measured): once on the way
# to the model, once on the way back. Part of what is heard, not of the frame counts.
CODEC_DELAY_S = 2 * 154 / SAMPLE_RATE


@dataclass(frozen=True)
class ConversationConfig:
    url: str
    text_prompt: str
    voice_prompt: str
    api_key: str | None = field(default=None, repr=False)
    key_in_query: bool = False
    # Ask our gateway for queue and status messages before the handshake; servers ignore it.
    request_status: bool = True
    # Generous because a gateway may keep us queued behind other callers for a while.
    handshake_timeout: float = 600.0
    open_timeout: float = 10.0
    record: bool = False
    recordings_dir: Path | None = None
    # The Talk page turns cancellation on unless the user chose Headphones; the engine's own
    # default is the untouched microphone (no processing, lowest latency), which tests of its
    # timing and of exact samples rely on.
    echo: EchoSettings = field(default_factory=lambda: EchoSettings(cancel=False))

    def session_options(self) -> SessionOptions:
        return SessionOptions(
            text_prompt=self.text_prompt,
            voice_prompt=self.voice_prompt,
            api_key=self.api_key,
            key_in_query=self.key_in_query,
            handshake_timeout=self.handshake_timeout,
            open_timeout=self.open_timeout,
            extra_query={"pplex_status": "1"} if self.request_status else {},
        )


class Conversation:
    """One live conversation; ``await run()`` drives it from start to end exactly once.

    Every method runs on the conversation's loop: from the Qt thread, use
    ``loop.call_soon_threadsafe(conv.press)`` for the plain setters and
    ``run_coroutine_threadsafe(conv.hang_up(), loop)`` to hang up.
    """

    def __init__(
        self,
        config: ConversationConfig,
        device: DuplexDevice,
        listener: Listener | None = None,
        *,
        ptt: PushToTalk | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._device = device
        self._listener = listener
        self._ptt = ptt or PushToTalk(PttMode.OPEN)
        self._clock = clock or SystemClock()
        self._state = ConversationState.IDLE
        self._last_event: StateChanged | None = None
        self._hangup = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._hung_up = False
        self._session: MoshiSession | None = None
        self._framer = Framer()
        self._in_meter = LevelMeter()
        self._out_meter = LevelMeter()
        self._send_times: collections.deque[float] = collections.deque()
        # Capture times of the frames whose answers have not been heard yet, from frame
        # ``_heard_frames`` on, with where each begins in the recording's user side.
        self._capture_times: collections.deque[tuple[float, int | None]] = collections.deque()
        self._heard_frames = 0
        self._delay: float | None = None
        # The recording's user and model samples the delay was last measured between.
        self._delay_at: tuple[int | None, int | None] = (None, None)
        self._frames_sent = 0
        self._samples_received = 0
        self._frames_received = 0
        self._rtt: float | None = None
        self._live_at: float | None = None
        self._server_error: str | None = None
        self._recorder: ConversationRecorder | None = None
        self._echo: EchoCanceller | None = None
        self._echo_heard = False
        # (times the speaker ran dry, ms of model audio dropped, microphone blocks lost) so far.
        self._glitches: tuple[int, float, int] = (0, 0.0, 0)
        self._apply_gain()

    # What the UI reads and sets (on the conversation's loop).

    @property
    def state(self) -> ConversationState:
        return self._state

    @property
    def ptt(self) -> PushToTalk:
        return self._ptt

    def press(self) -> None:
        self._ptt.press()
        self._apply_gain()

    def release(self) -> None:
        self._ptt.release()
        self._apply_gain()

    def set_ptt_mode(self, mode: PttMode | str) -> None:
        self._ptt.mode = PttMode(mode)
        self._apply_gain()

    def set_speaker_muted(self, muted: bool) -> None:
        self._ptt.speaker_muted = muted
        self._apply_gain()

    def set_duck_gain(self, gain: float | None) -> None:
        self._ptt.duck_gain = gain
        self._apply_gain()

    def set_jitter_target_ms(self, ms: float | None) -> None:
        """A fixed playback buffer target, or None for the adaptive one."""
        self._device.jitter.set_target_ms(ms)

    async def hang_up(self) -> None:
        """End the conversation (or its connection attempt) and wait until it has ended."""
        self._hangup.set()
        if self._started:
            await self._done.wait()

    # The lifetime.

    async def run(self) -> ConversationState:
        if self._started:
            raise RuntimeError("A Conversation runs once; create a new one to talk again.")
        self._started = True
        final = (ConversationState.ERROR, "The conversation failed unexpectedly.")
        mic: asyncio.Task[None] | None = None
        try:
            self._set_state(ConversationState.CONNECTING)
            session = None
            if not self._hangup.is_set():
                # Off the loop: the first one imports livekit and builds AEC3 (~100 ms of CPU).
                self._echo = await asyncio.to_thread(EchoCanceller, self.config.echo)
                await self._device.start(self._on_played)
                mic = asyncio.create_task(self._mic_pump(), name="conversation-microphone")
                session = await self._connect(mic)
                if session is not None:
                    async with session:
                        final = await self._live(session, mic)
            if session is None:
                final = (ConversationState.ENDED, "You hung up before the conversation started.")
        except PplexError as exc:
            final = (ConversationState.ERROR, exc.message)
        except asyncio.CancelledError:
            final = (ConversationState.ENDED, "The conversation was stopped.")
            raise
        except Exception:  # noqa: BLE001 - any bug must still end in a state the UI can show
            _log.exception("The conversation failed unexpectedly.")
        finally:
            await self._shut_down(mic)
            self._set_state(*final)
            _log.info("The conversation %s: %s", final[0].value, redact_text(final[1]))
            self._done.set()
        return self._state

    async def _connect(self, mic: asyncio.Task[None]) -> MoshiSession | None:
        """Open the session; None if the user hung up first. The microphone runs meanwhile
        (levels only), so a dead microphone fails the attempt instead of a live call."""
        url = self.config.url
        _log.info("Connecting a conversation to %s.", redact_url(url))
        connect = asyncio.create_task(
            MoshiSession.connect(url, self.config.session_options(), on_metadata=self._on_metadata),
            name="conversation-connect",
        )
        hangup = asyncio.create_task(self._hangup.wait())
        try:
            await asyncio.wait({connect, mic, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
        if connect.done():
            return connect.result()
        connect.cancel()
        results = await asyncio.gather(connect, return_exceptions=True)
        if isinstance(results[0], MoshiSession):  # it won the race after all
            await results[0].close()
        if mic.done():
            mic.result()  # raises the device's error
        return None

    async def _live(
        self, session: MoshiSession, mic: asyncio.Task[None]
    ) -> tuple[ConversationState, str]:
        self._go_live(session)
        receive = asyncio.create_task(self._receive(session), name="conversation-receive")
        hangup = asyncio.create_task(self._hangup.wait())
        try:
            await asyncio.wait({receive, mic, hangup}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                self._hung_up = hangup.done()
                await session.close()
            outcome = await receive
        finally:
            hangup.cancel()
            receive.cancel()
        if mic.done() and not mic.cancelled() and mic.exception() is not None:
            mic.result()  # the microphone failed: report that rather than the close it caused
        return outcome

    def _go_live(self, session: MoshiSession) -> None:
        # Audio captured while connecting is stale; the model must hear the present.
        self._device.discard_input()
        self._framer = Framer()
        self._live_at = self._clock.monotonic()
        if self.config.record:
            self._recorder = ConversationRecorder(
                voice=self.config.voice_prompt,
                persona=self.config.text_prompt,
                folder=self.config.recordings_dir,
                clock=self._clock,
            )
        self._session = session
        self._set_state(ConversationState.LIVE)

    async def _shut_down(self, mic: asyncio.Task[None] | None) -> None:
        self._session = None
        if mic is not None:
            mic.cancel()
            await asyncio.gather(mic, return_exceptions=True)
        try:
            await self._device.stop()
        finally:
            if self._recorder is not None:
                info = self._recorder.close()
                self._recorder = None
                self._emit(RecordingSaved(info))

    # The two directions.

    async def _mic_pump(self) -> None:
        """Send one frame per 80 ms the microphone delivered: the device is the clock."""
        while True:
            captured = await self._device.read()
            block, captured_t = captured.pcm, captured.t
            if self._echo is not None:
                # Before the gate, the meter and the recording: all of them are about what the
                # model hears, and it hears the microphone without the speaker in it.
                block, captured_t = self._echo.process(block, captured_t)
                self._report_echo()
                if not block.size:
                    continue
            self._in_meter.add(block)
            session = self._session
            if session is None:
                self._emit_levels()
                continue
            # When the first sample the framer still holds was captured.
            start = captured_t - self._framer.pending / SAMPLE_RATE
            for i, frame in enumerate(self._framer.push(block)):
                gated = self._ptt.gate(frame)
                self._apply_gain()
                captured_at = start + i * FRAME_SAMPLES / SAMPLE_RATE
                self._send_times.append(self._clock.monotonic())
                recorder = self._recorder
                self._capture_times.append(
                    (captured_at, None if recorder is None else recorder.user_samples)
                )
                try:
                    await session.send_frame(gated)
                except SessionClosedError:
                    return  # the receiving side reports how and why it closed
                self._frames_sent += 1
                if self._recorder is not None:
                    # What the model heard, silence included, at the time it was said.
                    self._recorder.write_user(gated, captured_at)
                self._emit_levels()
                if self._frames_sent % STATS_EVERY_FRAMES == 0:
                    if self._recorder is not None and self._delay is not None:
                        user_at, model_at = self._delay_at
                        self._recorder.add_delay(self._delay, user_at=user_at, model_at=model_at)
                    stats = self.stats()
                    self._log_glitches(stats)
                    self._emit(stats)

    async def _receive(self, session: MoshiSession) -> tuple[ConversationState, str]:
        async for event in session.events():
            if isinstance(event, AudioEvent):
                self._device.play(event.pcm)
                self._count_received(event.pcm.shape[0])
            elif isinstance(event, TextEvent):
                t = self._session_time()
                if self._recorder is not None:
                    self._recorder.add_text(event.text)
                self._emit(TextPiece(event.text, round(t, 3)))
            elif isinstance(event, ErrorEvent):
                _log.warning("The server reported an error: %s", redact_text(event.message))
                # Servers close right after reporting; the close then becomes an error state.
                self._server_error = event.message
            elif isinstance(event, ClosedEvent):
                return self._outcome(event)
        return ConversationState.ERROR, "The connection ended without a close message."

    def _outcome(self, closed: ClosedEvent) -> tuple[ConversationState, str]:
        if self._hung_up:
            return ConversationState.ENDED, "You hung up."
        if self._server_error is not None:
            return ConversationState.ERROR, f"The server reported an error: {self._server_error}"
        return close_outcome(closed.code, closed.reason)

    def _on_played(self, played: Played) -> None:
        if self._echo is not None:
            self._echo.play(played.pcm, played.t)  # the far end: exactly what was played
        self._out_meter.add(played.pcm)
        model_at = None
        if self._recorder is not None:
            model_at = self._recorder.model_samples
            self._recorder.write_model(played.pcm, played.t)
        self._measure_delay(played, model_at)

    def _measure_delay(self, played: Played, model_at: int | None) -> None:
        """Time from capturing frame n to hearing the start of the model's frame n."""
        end = played.position + played.model_samples
        while self._capture_times and self._heard_frames * FRAME_SAMPLES < end:
            start = self._heard_frames * FRAME_SAMPLES
            captured_at, user_at = self._capture_times.popleft()
            self._heard_frames += 1
            if start < played.position:
                continue  # the jitter buffer dropped its start: it was never heard
            heard_at = played.t + (start - played.position) / SAMPLE_RATE
            # Not smoothed: when the buffer's depth changes, so does what is heard, at once.
            self._delay = heard_at - captured_at + CODEC_DELAY_S
            self._delay_at = (user_at, model_at)

    def _count_received(self, samples: int) -> None:
        self._samples_received += samples
        now = self._clock.monotonic()
        while self._samples_received >= (self._frames_received + 1) * FRAME_SAMPLES:
            self._frames_received += 1
            # Frame n out answers frame n in; the Kyutai server drops its first input frame,
            # which makes this estimate one frame (80 ms) high there.
            if self._send_times:
                rtt = now - self._send_times.popleft()
                self._rtt = (
                    rtt if self._rtt is None else self._rtt + _RTT_SMOOTHING * (rtt - self._rtt)
                )

    # Reporting.

    def _session_time(self) -> float:
        return 0.0 if self._live_at is None else self._clock.monotonic() - self._live_at

    def stats(self) -> SessionStats:
        jitter = self._device.jitter.stats()
        device = self._device.stats()
        return SessionStats(
            session_s=round(self._session_time(), 3),
            rtt_ms=None if self._rtt is None else round(1000.0 * self._rtt, 1),
            delay_ms=None if self._delay is None else round(1000.0 * self._delay, 1),
            buffer_ms=round(jitter.depth_ms, 1),
            target_ms=jitter.target_ms,
            buffer_adaptive=jitter.adaptive,
            underruns=jitter.underruns,
            dropped_ms=round(jitter.dropped_ms, 1),
            frames_sent=self._frames_sent,
            frames_received=self._frames_received,
            input_overflows=device.input_overflows,
            output_underflows=device.output_underflows + audio_errors.underruns(),
        )

    def _log_glitches(self, stats: SessionStats) -> None:
        """Say in the log when sound was lost, so that whoever heard a skip can tell why."""
        now = (stats.underruns + stats.output_underflows, stats.dropped_ms, stats.input_overflows)
        ran_dry, dropped, lost = (a - b for a, b in zip(now, self._glitches, strict=True))
        self._glitches = now
        if ran_dry:
            _log.warning(
                "The speaker ran dry %d time(s): the model's audio came late, and the gap was "
                "heard as silence.",
                ran_dry,
            )
        if dropped:
            _log.warning(
                "%.0f ms of the model's audio were dropped to stay on time after a late burst.",
                dropped,
            )
        if lost:
            _log.warning(
                "The microphone lost audio %d time(s) because the app did not read it in time; "
                "the model did not hear that part.",
                lost,
            )

    def _report_echo(self) -> None:
        assert self._echo is not None
        heard = self._echo.detector.heard
        if heard != self._echo_heard:
            self._echo_heard = heard
            self._emit(EchoHeard(heard, ECHO_SENTENCE if heard else ""))

    def _emit_levels(self) -> None:
        in_rms, in_peak = self._in_meter.read()
        out_rms, out_peak = self._out_meter.read()
        self._emit(Levels(in_rms, in_peak, out_rms, out_peak, self._ptt.talking))

    def _apply_gain(self) -> None:
        self._device.jitter.gain = self._ptt.output_gain

    def _on_metadata(self, data: Any) -> None:
        """Map our gateway's queue and status messages (sent before the handshake) to states."""
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "queue":
            self._set_state(
                ConversationState.QUEUED,
                queue_position=_number(data.get("position"), int),
                eta_s=_number(data.get("eta_s"), float),
            )
        elif kind == "status" and data.get("state") in ("connecting", "preparing"):
            self._set_state(ConversationState(data["state"]))

    def _set_state(
        self,
        state: ConversationState,
        detail: str = "",
        *,
        queue_position: int | None = None,
        eta_s: float | None = None,
    ) -> None:
        if self._state.finished:
            return
        event = StateChanged(state, detail, queue_position, eta_s)
        if event == self._last_event:
            return
        self._state = state
        self._last_event = event
        self._emit(event)

    def _emit(self, event: ConversationEvent) -> None:
        if self._listener is None:
            return
        try:
            self._listener(event)
        except Exception:  # noqa: BLE001 - a broken listener must not take the audio down
            _log.exception("The conversation listener failed on %s.", type(event).__name__)


def _decap(sentence: str) -> str:
    """A server's sentence, to follow a colon in ours."""
    text = sentence.strip()
    if text[:4] == "The " or text[:2] in ("A ", "An"):
        text = text[0].lower() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def close_outcome(code: int | None, reason: str) -> tuple[ConversationState, str]:
    """How a close from the server ends the call, in a sentence that says why."""
    reason = redact_text(reason.strip())
    if code == CloseCode.GOING_AWAY:
        # Our gateway says why it went away (stopped from the Server page, the app quitting);
        # a bare GOING_AWAY is a server shutting down or restarting.
        if reason:
            return ConversationState.ENDED, f"The conversation ended: {_decap(reason)}"
        return (
            ConversationState.ENDED,
            "The conversation ended because the server is stopping or restarting.",
        )
    if code == CloseCode.NORMAL:
        if reason:
            return ConversationState.ENDED, f"The conversation ended: {_decap(reason)}"
        return ConversationState.ENDED, "The server ended the conversation."
    if code and reason:
        return (
            ConversationState.ERROR,
            f"The conversation was cut off (close code {code}): {_decap(reason)}",
        )
    detail = f" (close code {code})" if code else ""
    return ConversationState.ERROR, f"The connection to the server was lost{detail}."


def _number(value: object, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value) if value >= 0 else None
