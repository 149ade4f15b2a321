"""The Talk page: a live, full-duplex conversation with the model through our own gateway.

The conversation is one more client of the gateway (``/api/chat`` on loopback with the app's
owner key), so the queue, the limits and the logs are the same as for every LAN client. The
conversation itself runs on the "pplex-conversation" thread (LiveSession); this page composes
its boxes (header, persona and voice, sound, talking, conversation, recordings) and wires them
to the session: it shows what arrives and forwards what the user does.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QVBoxLayout, QWidget

from pplex_desktop.audio.conversation import ConversationConfig
from pplex_desktop.audio.echo import EchoSettings
from pplex_desktop.audio.events import (
    ConversationState,
    Levels,
    SessionStats,
    StateChanged,
)
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.audio.recorder import RecordingInfo, recordings_dir
from pplex_desktop.core.errors import PplexError
from pplex_desktop.desktop.live_audio import AudioSystem, DeviceScan, SoundDeviceAudio
from pplex_desktop.desktop.live_text import state_detail
from pplex_desktop.gateway.events import VoicesChanged
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.server.gateway_control import GatewayView
from pplex_desktop.ui.talk.call_header import CallHeader
from pplex_desktop.ui.talk.conversation_box import TALK_LABELS as TALK_LABELS  # noqa: PLC0414 (re-exported for the tests)
from pplex_desktop.ui.talk.conversation_box import ConversationBox
from pplex_desktop.ui.talk.live_session import LiveSession, VoiceList
from pplex_desktop.ui.talk.persona_box import PersonaBox
from pplex_desktop.ui.talk.recordings_box import RecordingsBox
from pplex_desktop.ui.talk.sound_box import SoundBox
from pplex_desktop.ui.talk.space_to_talk import SpaceToTalk
from pplex_desktop.ui.talk.talk_intent import TalkIntent
from pplex_desktop.ui.talk.talk_memory import TalkMemory
from pplex_desktop.ui.talk.talking_box import TalkingBox
from pplex_desktop.ui.widgets.level_meter import MeterClock

_log = logging.getLogger(__name__)
S = ConversationState


class LivePanel(QWidget):
    def __init__(
        self,
        ctx: DesktopContext,
        audio: AudioSystem | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self.session = LiveSession(audio or SoundDeviceAudio(), self)
        self.session.bridge.failed.connect(ctx.errors.report)
        self.recordings_folder = ctx.data_dir / "recordings"
        self.scan: DeviceScan | None = None
        self.audio_problem: str | None = None
        self.scanning = False
        self._voices_for: str | None = None  # the gateway URL whose voices were asked for
        self.voices_from: str | None = None  # the gateway URL whose voices are in the combo
        self._intent = TalkIntent()
        self.talking = False  # what the engine last reported (Levels.talking)
        self._last_state = StateChanged(S.IDLE)
        self.last_stats: SessionStats | None = None

        memory = TalkMemory(ctx.data_dir)
        self.header = CallHeader()
        self.persona_box = PersonaBox(memory, lambda: ctx.gateway.settings.default_voice)
        self.sound_box = SoundBox(memory)
        self.talking_box = TalkingBox(memory)
        self.recordings = RecordingsBox(self.recordings_folder)
        self.conversation_box = ConversationBox()
        self._lay_out()
        self._name_widgets()

        self.meter_clock = MeterClock([self.input_meter, self.output_meter], self)
        self.space = SpaceToTalk(self, self._space_armed, self)
        self._wire()
        self._show_state(self._last_state)
        self._gateway_changed(ctx.gateway.view)

    def _lay_out(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.setSpacing(10)
        root.addWidget(self.header)
        columns = QHBoxLayout()
        columns.setSpacing(14)
        settings = QWidget()
        left = QVBoxLayout(settings)
        left.setContentsMargins(0, 0, 4, 0)
        left.addWidget(self.persona_box)
        left.addWidget(self.sound_box)
        left.addWidget(self.talking_box)
        left.addWidget(self.recordings, 1)
        # Scrolls on a small screen instead of forcing the whole window to its height.
        scroll = QScrollArea()
        scroll.setWidget(settings)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Never narrower than its content: only the height may scroll.
        scroll.setMinimumWidth(
            settings.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        )
        columns.addWidget(scroll, 2)
        columns.addWidget(self.conversation_box, 3)
        root.addLayout(columns, 1)

    def _name_widgets(self) -> None:
        """The boxes' widgets under the page's own names, as the tests and scripts reach them."""
        header, persona, sound = self.header, self.persona_box, self.sound_box
        talking, conversation = self.talking_box, self.conversation_box
        self.state_label, self.detail_label = header.state_label, header.detail_label
        self.blocker_label = header.blocker_label
        self.connect_button, self.hangup_button = header.connect_button, header.hangup_button
        self.preset_combo, self.persona_edit = persona.preset_combo, persona.persona_edit
        self.voice_combo = persona.voice_combo
        self.input_combo, self.output_combo = sound.input_combo, sound.output_combo
        self.refresh_button, self.jitter_spin = sound.refresh_button, sound.jitter_spin
        self.mode_buttons, self.duck_check = talking.mode_buttons, talking.duck_check
        self.record_check, self.echo_check = talking.record_check, talking.echo_check
        self.headphones_check, self.noise_check = talking.headphones_check, talking.noise_check
        self.echo_label = talking.echo_label
        self.transcript, self.stats_label = conversation.transcript, conversation.stats_label
        self.input_meter, self.output_meter = conversation.input_meter, conversation.output_meter
        self.mute_check, self.talk_button = conversation.mute_check, conversation.talk_button

    def _wire(self) -> None:
        s = self.session
        self.header.connect_button.clicked.connect(self.connect_call)
        self.header.hangup_button.clicked.connect(self.hang_up)
        self.persona_box.persona_changed.connect(self._update_controls)
        self.sound_box.refresh_button.clicked.connect(lambda: self.scan_devices(refresh=True))
        self.sound_box.jitter_spin.valueChanged.connect(
            lambda _value: s.set_jitter_target_ms(self.sound_box.jitter_target_ms)
        )
        self.talking_box.mode_chosen.connect(self._mode_chosen)
        self.talking_box.duck_changed.connect(s.set_duck_gain)
        self.talking_box.choices_changed.connect(self._update_controls)
        self.conversation_box.mute_check.toggled.connect(s.set_speaker_muted)
        self.conversation_box.talk_pressed.connect(lambda: self._press("button"))
        self.conversation_box.talk_released.connect(lambda: self._release("button"))
        self.space.pressed.connect(lambda: self._press("key"))
        self.space.released.connect(lambda: self._release("key"))
        s.state_changed.connect(self._show_state)
        s.text_arrived.connect(self.conversation_box.add_text)
        s.levels_arrived.connect(self._show_levels)
        s.stats_arrived.connect(self._show_stats)
        s.recording_saved.connect(self._recording_saved)
        s.echo_heard.connect(self.talking_box.show_echo)
        s.finished.connect(self._finished)
        self.recordings.play_requested.connect(self._play)
        self.recordings.stop_requested.connect(s.stop_playing)
        self.recordings.delete_confirmed.connect(self._delete_recording)
        self._ctx.gateway.changed.connect(self._gateway_changed)
        self._ctx.bridge.any_event.connect(self._event)

    # -- what the boxes hold ---------------------------------------------------------------------

    @property
    def persona(self) -> str:
        return self.persona_box.persona

    @property
    def voice(self) -> str:
        return self.persona_box.voice

    @property
    def mode(self) -> PttMode:
        return self.talking_box.mode

    @property
    def echo_settings(self) -> EchoSettings:
        return self.talking_box.echo_settings

    @property
    def wants_to_talk(self) -> bool:
        """Whether the user asked for an open microphone (the engine confirms via Levels)."""
        return self._intent.wants(self.mode)

    def transcript_text(self) -> str:
        return self.conversation_box.transcript.toPlainText()

    # -- voices ---------------------------------------------------------------------------------

    def _fetch_voices(self, base_url: str) -> None:
        self._voices_for = base_url

        def failed(error: BaseException) -> None:
            self._voices_for = None
            _log.warning("Keeping the built-in voice list: %s", error)

        def fetched(voices: VoiceList) -> None:
            self.voices_from = base_url
            self.persona_box.fill_voices(voices)

        self.session.fetch_voices(base_url, self._ctx.owner_key, fetched, failed)

    def _fetch_voices_if_needed(self) -> None:
        # Only for a page on screen: the voice list costs a request in the gateway's activity.
        view = self._ctx.gateway.view
        if view.state is GatewayState.RUNNING and view.url and view.url != self._voices_for:
            self._fetch_voices(view.url)

    def _event(self, event: object) -> None:
        if isinstance(event, VoicesChanged):
            self._voices_for = None  # a voice was stored or removed: read the list again
            if self.isVisible():
                self._fetch_voices_if_needed()

    def _gateway_changed(self, _view: GatewayView) -> None:
        if self.isVisible():
            self._fetch_voices_if_needed()
        self._update_controls()

    # -- devices --------------------------------------------------------------------------------

    def scan_devices(self, *, refresh: bool = False) -> None:
        if self.scanning or self.session.active:
            return
        self.scanning = True
        self._update_controls()
        self.session.scan_devices(
            refresh=refresh, on_done=self._scanned, on_error=self._scan_failed
        )

    def _scanned(self, scan: DeviceScan) -> None:
        self.scanning = False
        self.scan = scan
        self.audio_problem = scan.problem()
        self.sound_box.show_devices(scan)
        self._update_controls()

    def _scan_failed(self, error: BaseException) -> None:
        self.scanning = False
        self.scan = DeviceScan((), ())
        if isinstance(error, PplexError):
            message = error.message
            _log.warning("Talking is unavailable: %s", message)
        else:
            self._ctx.errors.report("looking for sound devices", error)
            message = "The sound devices could not be listed, so talking is unavailable."
        self.audio_problem = f"{message} The rest of the app works without sound."
        self._update_controls()

    # -- connecting and hanging up -------------------------------------------------------------

    def blocker(self) -> str | None:
        """Why Connect cannot work right now, as a sentence; None if it can."""
        view = self._ctx.gateway.view
        if view.state is GatewayState.STARTING:
            return "The gateway is starting; you can connect in a moment."
        if view.state is not GatewayState.RUNNING or self._ctx.gateway_url() is None:
            return (
                "The gateway is not running, and conversations go through it: start it on the "
                "Server page."
            )
        if self.audio_problem is not None:
            return self.audio_problem
        if self.scan is None:
            return "Looking for sound devices…"
        if not self.persona:
            return "Write a persona, or pick a preset, to connect."
        if not self.voice:
            return "Pick a voice to connect."
        return None

    def connect_call(self) -> None:
        url = self._ctx.gateway_url()
        if self.session.active or self.blocker() is not None or url is None:
            return
        talking = self.talking_box
        config = ConversationConfig(
            url=url,
            text_prompt=self.persona,
            voice_prompt=self.voice,
            api_key=self._ctx.owner_key,
            record=talking.record,
            # Created here, not by the recorder, which expects an existing folder.
            recordings_dir=recordings_dir(self._ctx.data_dir) if talking.record else None,
            echo=talking.echo_settings,
        )
        talking.hide_echo()
        ptt = PushToTalk(
            self.mode,
            duck_gain=talking.duck_gain,
            speaker_muted=self.conversation_box.mute_check.isChecked(),
        )
        self._intent.reset()
        self.conversation_box.start()
        self.session.start(
            config,
            input_device=self.sound_box.input_device,
            output_device=self.sound_box.output_device,
            jitter_target_ms=self.sound_box.jitter_target_ms,
            ptt=ptt,
        )
        self._update_controls()

    def hang_up(self) -> None:
        self.session.hang_up()

    def _show_state(self, event: StateChanged) -> None:
        self._last_state = event
        self.header.show_state(event.state, state_detail(event, self.mode))
        self._update_controls()

    def _finished(self, _state: ConversationState) -> None:
        self._intent.reset()
        self.space.let_go()
        self.talking = False
        self.conversation_box.silence()
        self.meter_clock.kick()
        self._update_controls()

    # -- push-to-talk ---------------------------------------------------------------------------

    def _space_armed(self) -> bool:
        return self.session.active and self.mode is not PttMode.OPEN

    def _mode_chosen(self, mode: PttMode) -> None:
        self._intent.reset()
        self.space.let_go()
        self.session.set_ptt_mode(mode)
        self.header.detail_label.setText(state_detail(self._last_state, mode))
        self._update_controls()

    def _press(self, source: str) -> None:
        if self._intent.press(self.mode, source):
            self.session.press()
        self._update_talk_button()

    def _release(self, source: str) -> None:
        if self._intent.release(self.mode, source):
            self.session.release()
        self._update_talk_button()

    # -- what the conversation reports ----------------------------------------------------------

    def _show_levels(self, levels: Levels) -> None:
        self.conversation_box.show_levels(levels)
        self.meter_clock.kick()
        if levels.talking != self.talking:
            self.talking = levels.talking
            self._update_talk_button()

    def _show_stats(self, stats: SessionStats) -> None:
        self.last_stats = stats
        self.conversation_box.show_stats(stats)

    # -- recordings -----------------------------------------------------------------------------

    def refresh_recordings(self) -> None:
        self.session.list_recordings(self.recordings_folder, self.recordings.set_recordings)

    def _recording_saved(self, info: RecordingInfo) -> None:
        self._ctx.status.post(f"The conversation was recorded as {info.wav_path.name}.")

        def listed(infos: list[RecordingInfo]) -> None:
            self.recordings.set_recordings(infos)
            self.recordings.select(info.stem)

        self.session.list_recordings(self.recordings_folder, listed)

    def _play(self, info: RecordingInfo) -> None:
        if self.session.active:
            return
        self.recordings.set_playing(info)

        def done(_seconds: float) -> None:
            self.recordings.set_playing(None)

        def failed(error: BaseException) -> None:
            self.recordings.set_playing(None)
            self._ctx.errors.report("playing a recording", error)

        self.session.play(info.wav_path, self.sound_box.output_device, done, failed)

    def _delete_recording(self, info: RecordingInfo) -> None:
        if self.recordings.playing is not None and self.recordings.playing.stem == info.stem:
            self.session.stop_playing()

        def done(_none: None) -> None:
            self._ctx.status.post(f"The recording {info.wav_path.name} was deleted.")
            self.refresh_recordings()

        def failed(error: BaseException) -> None:
            self._ctx.errors.report("deleting a recording", error)
            self.refresh_recordings()

        self.session.delete_recording(info.stem, self.recordings_folder, done, failed)

    # -- enabling -------------------------------------------------------------------------------

    def _update_controls(self) -> None:
        active = self.session.active
        self.header.show_controls(active, None if active else self.blocker())
        usable = self.audio_problem is None and self.scan is not None
        self.sound_box.set_state(usable=usable, active=active, scanning=self.scanning)
        self.persona_box.set_active(active)
        self.talking_box.set_active(active)
        self.recordings.set_can_play(not active and usable)
        self._update_talk_button()

    def _update_talk_button(self) -> None:
        live = self.session.active and self.session.state is not S.ERROR
        self.conversation_box.show_talk(self.mode, live=live, wants=self.wants_to_talk)

    # -- page hooks -----------------------------------------------------------------------------

    def page_shown(self) -> None:
        self.space.install()
        if self.scan is None and not self.scanning:
            self.scan_devices()
        self.refresh_recordings()
        self._fetch_voices_if_needed()

    def page_hidden(self) -> None:
        self.space.uninstall()

    def shutdown(self) -> None:
        self.space.uninstall()
        self.meter_clock.stop()
        self.session.shutdown()
