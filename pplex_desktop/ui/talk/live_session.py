"""The Talk page's link to its conversation thread: one Conversation at a time, device scans,
the gateway's voice list and recordings, all run on the "pplex-conversation" loop.

Threads (ARCHITECTURE.md): the Conversation and everything that may block run on their own
LoopThread, so a modal dialog or a heavy repaint never starves the audio. Its listener only
emits a Qt signal carrying the frozen event, tagged with the conversation it came from; the
slot on the Qt thread drops events of a conversation that has been replaced. The UI reaches
the conversation through the bridge (coroutines) or ``call_soon_threadsafe`` (plain setters).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from PySide6.QtCore import QObject, Qt, Signal

from pplex_desktop.audio.conversation import Conversation, ConversationConfig
from pplex_desktop.audio.events import (
    ConversationEvent,
    ConversationState,
    EchoHeard,
    Levels,
    RecordingSaved,
    SessionStats,
    StateChanged,
    TextPiece,
)
from pplex_desktop.audio.portaudio import DeviceSpec
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.audio.recorder import RecordingInfo, delete_recording, list_recordings
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.desktop.live_audio import AudioSystem, DeviceScan, FilePlayer
from pplex_desktop.ui.bridge import LoopBridge

_log = logging.getLogger(__name__)
THREAD_NAME = "pplex-conversation"
VOICES_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
HANG_UP_AT_QUIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Voice:
    file: str  # what the model server is asked for, e.g. "NATF2.pt"
    label: str  # what people read, e.g. "NATF2 (natural female)"


@dataclass(frozen=True, slots=True)
class VoiceList:
    voices: tuple[Voice, ...]
    default: str | None  # a file name from ``voices``


class VoicesUnavailableError(PplexError):
    code = "voices_unavailable"
    status = 502


@dataclass(frozen=True, slots=True)
class _Tagged:
    serial: int
    event: ConversationEvent


class LiveSession(QObject):
    """Starts and steers conversations; every signal arrives on the Qt thread."""

    state_changed = Signal(object)  # StateChanged
    text_arrived = Signal(object)  # TextPiece
    levels_arrived = Signal(object)  # Levels
    stats_arrived = Signal(object)  # SessionStats
    recording_saved = Signal(object)  # RecordingInfo
    echo_heard = Signal(object)  # EchoHeard
    finished = Signal(object)  # ConversationState: the conversation's run() has returned
    _arrived = Signal(object)  # _Tagged, emitted on the conversation thread

    def __init__(self, audio: AudioSystem, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.audio = audio
        self.loop_thread = LoopThread(THREAD_NAME)
        self.bridge = LoopBridge(self.loop_thread, self)
        self._serial = 0
        self.active = False  # from start() until the conversation's run() has returned
        self.state = ConversationState.IDLE
        self._closed = False
        # Loop-thread only: the running conversation and the running player.
        self._conversation: Conversation | None = None
        self._player: FilePlayer | None = None
        self._arrived.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    # -- conversations (Qt thread) -----------------------------------------------------------

    def start(
        self,
        config: ConversationConfig,
        *,
        input_device: DeviceSpec,
        output_device: DeviceSpec,
        jitter_target_ms: float | None,  # None: adaptive
        ptt: PushToTalk,
    ) -> None:
        """Start a conversation; its states arrive on ``state_changed``, its end on ``finished``."""
        if self.active:
            raise RuntimeError("A conversation is already running; hang up first.")
        self._serial += 1
        serial = self._serial
        self.active = True
        self._set_state(StateChanged(ConversationState.CONNECTING))

        def listen(event: ConversationEvent) -> None:
            # The conversation's loop: hand the event over, never touch a widget here.
            try:
                self._arrived.emit(_Tagged(serial, event))
            except RuntimeError:
                _log.debug("A conversation event arrived after the page was deleted.")

        async def run() -> ConversationState:
            await self._stop_player()
            device = self.audio.duplex(input_device, output_device, jitter_target_ms)
            conversation = Conversation(config, device, listen, ptt=ptt)
            self._conversation = conversation
            try:
                return await conversation.run()
            finally:
                if self._conversation is conversation:
                    self._conversation = None

        def done(state: ConversationState) -> None:
            if serial == self._serial:
                self.active = False
                self.finished.emit(state)

        def failed(error: BaseException) -> None:
            if serial != self._serial:
                return
            self.active = False
            if isinstance(error, PplexError):
                message = error.message
            else:
                _log.error("The conversation could not start.", exc_info=error)
                message = f"The conversation could not start (an internal error: {error!r})."
            self._set_state(StateChanged(ConversationState.ERROR, message))
            self.finished.emit(ConversationState.ERROR)

        self.bridge.call(run(), done, failed, what="talking to the model")

    def hang_up(self) -> None:
        if not self.active:
            return

        async def hang_up() -> None:
            conversation = self._conversation
            if conversation is not None:
                await conversation.hang_up()

        self.bridge.call(hang_up(), what="hanging up")

    def press(self) -> None:
        self._steer(lambda c: c.press())

    def release(self) -> None:
        self._steer(lambda c: c.release())

    def set_ptt_mode(self, mode: PttMode) -> None:
        self._steer(lambda c: c.set_ptt_mode(mode))

    def set_speaker_muted(self, muted: bool) -> None:
        self._steer(lambda c: c.set_speaker_muted(muted))

    def set_duck_gain(self, gain: float | None) -> None:
        self._steer(lambda c: c.set_duck_gain(gain))

    def set_jitter_target_ms(self, ms: float | None) -> None:
        self._steer(lambda c: c.set_jitter_target_ms(ms))

    def _steer(self, action: Callable[[Conversation], None]) -> None:
        """Apply a setter to the running conversation, on its loop, without waiting."""
        if not self.active or not self.loop_thread.running:
            return

        def apply() -> None:
            conversation = self._conversation
            if conversation is not None:
                action(conversation)

        try:
            self.loop_thread.call_soon(apply)
        except RuntimeError:
            _log.debug("The conversation thread stopped before a setting reached it.")

    # -- what the loop tells us (Qt thread) ----------------------------------------------------

    def _dispatch(self, tagged: _Tagged) -> None:
        event = tagged.event
        if isinstance(event, RecordingSaved):
            # Saved files matter even from a conversation that has been replaced.
            self.recording_saved.emit(event.recording)
            return
        if self._closed or tagged.serial != self._serial:
            return
        if isinstance(event, StateChanged):
            self._set_state(event)
        elif isinstance(event, Levels):
            self.levels_arrived.emit(event)
        elif isinstance(event, TextPiece):
            self.text_arrived.emit(event)
        elif isinstance(event, SessionStats):
            self.stats_arrived.emit(event)
        elif isinstance(event, EchoHeard):
            self.echo_heard.emit(event)

    def _set_state(self, event: StateChanged) -> None:
        self.state = event.state
        self.state_changed.emit(event)

    # -- devices, voices, recordings -------------------------------------------------------------

    def scan_devices(
        self,
        *,
        refresh: bool,
        on_done: Callable[[DeviceScan], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        if refresh and self.active:
            # Re-initialising PortAudio invalidates the streams of a running conversation.
            raise RuntimeError("The devices cannot be re-scanned during a conversation.")

        async def scan() -> DeviceScan:
            return await asyncio.to_thread(self.audio.scan, refresh=refresh)

        self.bridge.call(scan(), on_done, on_error, what="looking for sound devices")

    def fetch_voices(
        self,
        base_url: str,
        key: str,
        on_done: Callable[[VoiceList], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.bridge.call(_fetch_voices(base_url, key), on_done, on_error, what="reading voices")

    def list_recordings(self, folder: Path, on_done: Callable[[list[RecordingInfo]], None]) -> None:
        async def read() -> list[RecordingInfo]:
            return await asyncio.to_thread(list_recordings, folder)

        self.bridge.call(read(), on_done, what="reading the recordings")

    def delete_recording(
        self,
        stem: str,
        folder: Path,
        on_done: Callable[[None], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        async def delete() -> None:
            await asyncio.to_thread(delete_recording, stem, folder)

        self.bridge.call(delete(), on_done, on_error, what="deleting a recording")

    def play(
        self,
        path: Path,
        output_device: DeviceSpec,
        on_done: Callable[[float], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        async def play() -> float:
            await self._stop_player()
            player = self.audio.player(output_device)
            self._player = player
            try:
                return await player.play(path)
            finally:
                if self._player is player:
                    self._player = None

        self.bridge.call(play(), on_done, on_error, what="playing a recording")

    def stop_playing(self) -> None:
        self.bridge.call(self._stop_player(), what="stopping the player")

    async def _stop_player(self) -> None:
        player = self._player
        if player is not None:
            player.stop()

    # -- the end ---------------------------------------------------------------------------------

    def _hang_up_before_quitting(self) -> None:
        """Hang up as the user would, so the gateway and the recording end cleanly; a call that
        does not end within HANG_UP_AT_QUIT_S is cut short when the thread stops."""

        async def hang_up() -> None:
            conversation = self._conversation
            if conversation is not None:
                await conversation.hang_up()

        try:
            self.loop_thread.run(hang_up(), timeout=HANG_UP_AT_QUIT_S)
        except (TimeoutError, concurrent.futures.TimeoutError):
            _log.warning(
                "The call did not hang up within %g s; it is cut short.", HANG_UP_AT_QUIT_S
            )
        except RuntimeError as exc:
            _log.debug("The call could not be hung up before quitting: %s", exc)

    def shutdown(self) -> None:
        """Hang up and stop the thread (the app is quitting); a running call is cut short."""
        self._closed = True
        self.bridge.close()
        if not self.loop_thread.running:
            return
        if self.active:
            self._hang_up_before_quitting()
        try:
            self.loop_thread.stop(STOP_TIMEOUT_S)
        except RuntimeError as exc:
            _log.warning("%s", exc)


async def _fetch_voices(base_url: str, key: str) -> VoiceList:
    """The gateway's ``GET /v1/voices``, asked with this app's key like any other client."""
    timeout = aiohttp.ClientTimeout(total=VOICES_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{base_url}/v1/voices", headers={"X-API-Key": key}) as response,
        ):
            data: Any = await response.json()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise VoicesUnavailableError(
            f"The gateway's list of voices could not be read: {exc or type(exc).__name__}."
        ) from None
    if status != 200 or not isinstance(data, dict):
        raise VoicesUnavailableError(f"The gateway answered {status} when asked for its voices.")
    voices = tuple(
        Voice(str(v["file"]), str(v.get("label") or v["file"]))
        for v in data.get("voices", [])
        if isinstance(v, dict) and v.get("file")
    )
    wanted = data.get("default")
    default = next((v.file for v in voices if wanted in (v.file, v.file.rsplit(".", 1)[0])), None)
    return VoiceList(voices, default)
