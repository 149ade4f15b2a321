"""The Talk page: a live, full-duplex conversation with the model through our own gateway.

The conversation is one more client of the gateway (``/api/chat`` on loopback with the app's
owner key), so the queue, the limits and the logs are the same as for every LAN client. The
conversation itself runs on the "pplex-conversation" thread (LiveSession); this widget only
shows what arrives and forwards what the user does.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QShowEvent, QTextCursor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QStyleOptionButton,
    QVBoxLayout,
    QWidget,
)

from pplex_desktop.audio.conversation import ConversationConfig
from pplex_desktop.audio.echo import EchoSettings
from pplex_desktop.audio.events import (
    ConversationState,
    EchoHeard,
    Levels,
    SessionStats,
    StateChanged,
    TextPiece,
)
from pplex_desktop.audio.jitter import MAX_TARGET_MS
from pplex_desktop.audio.portaudio import DeviceInfo, DeviceSpec
from pplex_desktop.audio.ptt import PttMode, PushToTalk
from pplex_desktop.audio.recorder import RecordingInfo, recordings_dir
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.personas import DEFAULT_PERSONA, PRESETS
from pplex_desktop.core.voices import DEFAULT_VOICES, voice_entry
from pplex_desktop.desktop.live_audio import AudioSystem, DeviceScan, SoundDeviceAudio
from pplex_desktop.desktop.live_text import MODE_HINTS, TITLES, state_detail, stats_text
from pplex_desktop.desktop.ui_state import ui_state
from pplex_desktop.gateway.events import VoicesChanged
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.ui.context import DesktopContext
from pplex_desktop.ui.server.gateway_control import GatewayView
from pplex_desktop.ui.talk.live_session import LiveSession, Voice, VoiceList
from pplex_desktop.ui.talk.recordings_box import RecordingsBox
from pplex_desktop.ui.talk.space_to_talk import SpaceToTalk
from pplex_desktop.ui.widgets.level_meter import LevelMeter, MeterClock
from pplex_desktop.ui.widgets.widgets import label, selectable, styled

_log = logging.getLogger(__name__)
S = ConversationState
CUSTOM_PERSONA = "Custom"
SYSTEM_DEFAULT = "System default"
# About -12 dB: the model stays audible under your voice without talking over you.
DUCK_GAIN = 0.25
JITTER_MIN_MS, JITTER_STEP_MS = 40, 20
JITTER_ADAPTIVE = 0  # the spin box's special value

# Alt+M, Alt+T, Alt+G: the modes are reachable from the keyboard too.
MODE_LABELS = {PttMode.OPEN: "Open &mic", PttMode.HOLD: "Hold to &talk", PttMode.TOGGLE: "To&ggle"}
# Everything the big button can say: it is sized for the longest, so it never clips or resizes.
TALK_LABELS = (
    "Microphone open",
    "Open mic: the model hears you",
    "Talking… (release to stop)",
    "Hold to talk (Space)",
    "Talking… (press to stop)",
    "Press to talk (Space)",
)
STATE_KEY = "talk/"  # UI-state prefix for what the page remembers between runs


def jitter_target(value: int) -> float | None:
    """The spin box's value as a buffer target: None (adaptive) for 0, else at least the least."""
    return None if value == JITTER_ADAPTIVE else float(max(value, JITTER_MIN_MS))


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
        self._held: set[str] = set()  # what holds the talk key down: "key", "button"
        self._toggled = False
        self.talking = False  # what the engine last reported (Levels.talking)
        self._last_state = StateChanged(S.IDLE)
        self.last_stats: SessionStats | None = None

        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 14)
        root.setSpacing(10)
        root.addLayout(self._build_header())
        columns = QHBoxLayout()
        columns.setSpacing(14)
        settings = QWidget()
        left = QVBoxLayout(settings)
        left.setContentsMargins(0, 0, 4, 0)
        left.addWidget(self._build_persona())
        left.addWidget(self._build_sound())
        left.addWidget(self._build_talking())
        self.recordings = RecordingsBox(self.recordings_folder)
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
        columns.addWidget(self._build_conversation(), 3)
        root.addLayout(columns, 1)

        self.meter_clock = MeterClock([self.input_meter, self.output_meter], self)
        self.space = SpaceToTalk(self, self._space_armed, self)
        self.space.pressed.connect(lambda: self._press("key"))
        self.space.released.connect(lambda: self._release("key"))

        s = self.session
        s.state_changed.connect(self._show_state)
        s.text_arrived.connect(self._add_text)
        s.levels_arrived.connect(self._show_levels)
        s.stats_arrived.connect(self._show_stats)
        s.recording_saved.connect(self._recording_saved)
        s.echo_heard.connect(self._show_echo)
        s.finished.connect(self._finished)
        self.recordings.play_requested.connect(self._play)
        self.recordings.stop_requested.connect(self.session.stop_playing)
        self.recordings.delete_confirmed.connect(self._delete_recording)
        ctx.gateway.changed.connect(self._gateway_changed)
        ctx.bridge.any_event.connect(self._event)

        self._restore()
        self._show_state(self._last_state)
        self._gateway_changed(ctx.gateway.view)

    def showEvent(self, event: QShowEvent) -> None:
        # Sizes from the fonts the style sheet gives, known once the widgets are polished.
        self._fix_sizes()
        super().showEvent(event)

    def _fix_sizes(self) -> None:
        """Give the widgets whose text changes with the state one size for every state, so the
        layout does not jump when a call starts or ends and no label is ever cut."""
        button = self.talk_button
        button.ensurePolished()
        metrics = button.fontMetrics()
        option = QStyleOptionButton()
        option.initFrom(button)
        widest = max(metrics.horizontalAdvance(text) for text in TALK_LABELS)
        size = button.style().sizeFromContents(
            QStyle.ContentsType.CT_PushButton,
            option,
            QSize(widest, metrics.height()),
            button,
        )
        button.setMinimumWidth(size.width() + 2 * metrics.averageCharWidth())
        header = (self.connect_button, self.hangup_button)
        width = max(b.sizeHint().width() for b in header)
        for b in header:
            b.setFixedWidth(width)
        # Room for two lines of the reason a call ended, and of the figures, whatever they say.
        for wrapped in (self.detail_label, self.stats_label):
            wrapped.ensurePolished()
            wrapped.setMinimumHeight(2 * wrapped.fontMetrics().lineSpacing())

    # -- layout -------------------------------------------------------------------------------

    def _build_header(self) -> QVBoxLayout:
        box = QVBoxLayout()
        row = QHBoxLayout()
        self.state_label = label(TITLES[S.IDLE], role="state")
        self.state_label.setObjectName("talkState")
        row.addWidget(self.state_label, 1)
        self.connect_button = QPushButton("C&onnect")
        self.connect_button.setObjectName("connectButton")
        self.connect_button.setDefault(True)
        self.hangup_button = QPushButton("Hang &up")
        self.hangup_button.setObjectName("hangupButton")
        row.addWidget(self.connect_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.hangup_button, 0, Qt.AlignmentFlag.AlignTop)
        box.addLayout(row)
        self.detail_label = selectable(label(role="subtitle", wrap=True))
        self.detail_label.setObjectName("talkDetail")
        box.addWidget(self.detail_label)
        self.blocker_label = label(role="error", wrap=True)
        self.blocker_label.setObjectName("talkBlocker")
        box.addWidget(self.blocker_label)
        self.connect_button.clicked.connect(self.connect_call)
        self.hangup_button.clicked.connect(self.hang_up)
        return box

    def _build_persona(self) -> QGroupBox:
        group = QGroupBox("Persona and voice")
        layout = QVBoxLayout(group)
        self.preset_combo = QComboBox()
        for preset in PRESETS:
            self.preset_combo.addItem(preset.title, preset.text)
        self.preset_combo.addItem(CUSTOM_PERSONA, None)
        self.preset_combo.setToolTip("Start from a preset; edit the text below to make it yours.")
        layout.addWidget(self.preset_combo)
        self.persona_edit = QPlainTextEdit()
        self.persona_edit.setObjectName("personaEdit")
        self.persona_edit.setPlaceholderText("Who the model is and what it knows.")
        self.persona_edit.setTabChangesFocus(True)
        self.persona_edit.setMinimumHeight(64)
        self.persona_edit.setMaximumHeight(110)
        layout.addWidget(self.persona_edit)
        voice_row = QFormLayout()
        self.voice_combo = QComboBox()
        self.voice_combo.setObjectName("voiceCombo")
        self._fill_voices(VoiceList(tuple(_voice(v) for v in DEFAULT_VOICES), None))
        voice_row.addRow("Voice", self.voice_combo)
        layout.addLayout(voice_row)
        self.preset_combo.activated.connect(self._preset_chosen)
        self.persona_edit.textChanged.connect(self._persona_edited)
        self.voice_combo.activated.connect(lambda _i: self._remember("voice", self.voice))
        return group

    def _build_sound(self) -> QGroupBox:
        group = QGroupBox("Sound")
        form = QFormLayout(group)
        self.input_combo = QComboBox()
        self.input_combo.setObjectName("inputCombo")
        self.output_combo = QComboBox()
        self.output_combo.setObjectName("outputCombo")
        for combo in (self.input_combo, self.output_combo):
            combo.addItem(SYSTEM_DEFAULT, None)
            combo.setMinimumContentsLength(18)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look again for microphones and speakers (hot-plug).")
        mic_row = QHBoxLayout()
        mic_row.addWidget(self.input_combo, 1)
        mic_row.addWidget(self.refresh_button)
        form.addRow("Microphone", mic_row)
        form.addRow("Speaker", self.output_combo)
        self.jitter_spin = QSpinBox()
        # 0 is "Adaptive": the buffer follows the network's jitter by itself.
        self.jitter_spin.setRange(0, int(MAX_TARGET_MS))
        self.jitter_spin.setSingleStep(JITTER_STEP_MS)
        self.jitter_spin.setSuffix(" ms")
        self.jitter_spin.setSpecialValueText("Adaptive")
        self.jitter_spin.setValue(JITTER_ADAPTIVE)
        self.jitter_spin.setToolTip(
            "How much of the model's voice is kept ready before it plays. Adaptive follows the "
            "network by itself; a fixed value: lower answers sooner, higher rides over hiccups."
        )
        form.addRow("Playback buffer", self.jitter_spin)
        self.refresh_button.clicked.connect(lambda: self.scan_devices(refresh=True))
        self.input_combo.activated.connect(
            lambda _i: self._remember("input", self.input_combo.currentText())
        )
        self.output_combo.activated.connect(
            lambda _i: self._remember("output", self.output_combo.currentText())
        )
        self.jitter_spin.valueChanged.connect(self._jitter_changed)
        return group

    def _build_talking(self) -> QGroupBox:
        group = QGroupBox("Talking")
        layout = QVBoxLayout(group)
        modes = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        self.mode_buttons: dict[PttMode, QRadioButton] = {}
        for mode in PttMode:
            button = QRadioButton(MODE_LABELS[mode])
            button.setToolTip(MODE_HINTS[mode])
            self.mode_buttons[mode] = button
            self.mode_group.addButton(button)
            modes.addWidget(button)
            button.toggled.connect(lambda on, m=mode: self._mode_toggled(m, on))
        modes.addStretch(1)
        layout.addLayout(modes)
        self.duck_check = QCheckBox("Duck the model while I talk")
        self.duck_check.setToolTip("Turn the model down while your microphone hears you.")
        self.record_check = QCheckBox("&Record this conversation")
        self.record_check.setToolTip(
            "Save a stereo WAV (left: you, as the model heard you; right: the model, as you "
            "heard it) and the transcript, listed under Recordings."
        )
        layout.addWidget(self.duck_check)
        layout.addWidget(self.record_check)
        self.echo_check = QCheckBox("&Echo cancellation")
        self.echo_check.setToolTip(
            "Remove the model's voice from your microphone, so that on speakers it does not "
            "hear itself."
        )
        self.headphones_check = QCheckBox("Head&phones")
        self.headphones_check.setToolTip(
            "The microphone cannot hear the model: no echo cancellation, the lowest latency."
        )
        self.noise_check = QCheckBox("&Noise suppression")
        self.noise_check.setToolTip("Reduce steady background noise (fans, hum) in your voice.")
        echo_row = QHBoxLayout()
        for box in (self.echo_check, self.headphones_check, self.noise_check):
            echo_row.addWidget(box)
        echo_row.addStretch(1)
        layout.addLayout(echo_row)
        # Shown when the model hears itself anyway: what to do, in a sentence.
        self.echo_label = label(role="caption", wrap=True)
        self.echo_label.setObjectName("echoWarning")
        self.echo_label.setVisible(False)
        layout.addWidget(self.echo_label)
        self.echo_check.toggled.connect(lambda on: self._remember("echo", on))
        self.headphones_check.toggled.connect(self._headphones_toggled)
        self.noise_check.toggled.connect(lambda on: self._remember("noise", on))
        self.duck_check.toggled.connect(self._duck_toggled)
        self.record_check.toggled.connect(lambda on: self._remember("record", on))
        return group

    def _build_conversation(self) -> QGroupBox:
        group = QGroupBox("Conversation")
        layout = QVBoxLayout(group)
        self.transcript = QPlainTextEdit()
        self.transcript.setObjectName("transcript")
        self.transcript.setReadOnly(True)
        self.transcript.setPlaceholderText("The model's words appear here as it speaks.")
        layout.addWidget(self.transcript, 1)
        meters = QGridLayout()
        meters.setHorizontalSpacing(10)
        self.input_meter = LevelMeter()
        self.input_meter.setObjectName("inputMeter")
        self.output_meter = LevelMeter()
        self.output_meter.setObjectName("outputMeter")
        meters.addWidget(label("You"), 0, 0)
        meters.addWidget(self.input_meter, 0, 1)
        meters.addWidget(label("Model"), 1, 0)
        meters.addWidget(self.output_meter, 1, 1)
        # Beside the model's meter, not the big button: the button keeps the whole width.
        self.mute_check = QCheckBox("Mute speaker")
        self.mute_check.toggled.connect(self.session.set_speaker_muted)
        meters.addWidget(self.mute_check, 1, 2)
        meters.setColumnStretch(1, 1)
        layout.addLayout(meters)
        self.talk_button = QPushButton()
        self.talk_button.setObjectName("talkButton")
        self.talk_button.pressed.connect(lambda: self._press("button"))
        self.talk_button.released.connect(lambda: self._release("button"))
        layout.addWidget(self.talk_button)
        # Wraps instead of widening the column: a long figure line must not move the layout.
        self.stats_label = label(role="caption", wrap=True)
        self.stats_label.setObjectName("talkStats")
        self.stats_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stats_label.setToolTip(
            "Round trip: from your voice reaching the microphone to hearing the model's answer to "
            "it (what the recording shows); network and model: from sending 80 ms of your voice "
            "to the arrival of the answering frame. "
            "Buffer: the model's voice waiting to play, against its target. Underruns: times "
            "the speaker ran dry."
        )
        layout.addWidget(self.stats_label)
        return group

    # -- what the page remembers ----------------------------------------------------------------

    def _remember(self, name: str, value: str | int | bool) -> None:
        ui_state(self._ctx.data_dir).set_value(STATE_KEY + name, value)

    def _recall(self, name: str, default: Any) -> Any:
        value = ui_state(self._ctx.data_dir).value(STATE_KEY + name, default)
        if isinstance(default, bool):
            return value in (True, "true", "1", 1)
        if isinstance(default, int):
            try:
                return int(str(value))
            except ValueError:
                return default
        return value if isinstance(value, str) else default

    def _restore(self) -> None:
        self.persona_edit.setPlainText(self._recall("persona", DEFAULT_PERSONA))
        self._persona_edited()
        mode = self._recall("mode", PttMode.OPEN.value)
        known = {m.value for m in PttMode}
        self.mode_buttons[PttMode(mode) if mode in known else PttMode.OPEN].setChecked(True)
        self.duck_check.setChecked(self._recall("duck", False))
        self.record_check.setChecked(self._recall("record", False))
        self.echo_check.setChecked(self._recall("echo", True))
        self.noise_check.setChecked(self._recall("noise", False))
        self.headphones_check.setChecked(self._recall("headphones", False))
        self.jitter_spin.setValue(self._recall("jitter_ms", JITTER_ADAPTIVE))
        self._select_voice(self._recall("voice", ""), self._ctx.gateway.settings.default_voice)

    # -- persona and voice ----------------------------------------------------------------------

    @property
    def persona(self) -> str:
        return self.persona_edit.toPlainText().strip()

    @property
    def voice(self) -> str:
        return str(self.voice_combo.currentData() or "")

    def _preset_chosen(self, index: int) -> None:
        text = self.preset_combo.itemData(index)
        if isinstance(text, str):
            self.persona_edit.setPlainText(text)

    def _persona_edited(self) -> None:
        text = self.persona
        index = next(
            (i for i in range(len(PRESETS)) if self.preset_combo.itemData(i) == text),
            self.preset_combo.count() - 1,
        )
        self.preset_combo.setCurrentIndex(index)
        self._remember("persona", text)
        self._update_controls()

    def _fill_voices(self, voices: VoiceList) -> None:
        keep = self.voice
        self.voice_combo.clear()
        for voice in voices.voices:
            self.voice_combo.addItem(voice.label, voice.file)
        self._select_voice(keep, voices.default, self._ctx.gateway.settings.default_voice)

    def _select_voice(self, *candidates: str | None) -> None:
        """Select the first candidate the list has, else the first voice."""
        for file in candidates:
            index = self.voice_combo.findData(file) if file else -1
            if index >= 0:
                self.voice_combo.setCurrentIndex(index)
                return
        if self.voice_combo.count():
            self.voice_combo.setCurrentIndex(0)

    def _fetch_voices(self, base_url: str) -> None:
        self._voices_for = base_url

        def failed(error: BaseException) -> None:
            self._voices_for = None
            _log.warning("Keeping the built-in voice list: %s", error)

        def fetched(voices: VoiceList) -> None:
            self.voices_from = base_url
            self._fill_voices(voices)

        self.session.fetch_voices(base_url, self._ctx.owner_key, fetched, failed)

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
        self._fill_devices(self.input_combo, scan.inputs, "input")
        self._fill_devices(self.output_combo, scan.outputs, "output")
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

    def _fill_devices(self, combo: QComboBox, found: tuple[DeviceInfo, ...], kind: str) -> None:
        wanted = combo.currentText() if combo.count() > 1 else self._recall(kind, SYSTEM_DEFAULT)
        combo.clear()
        combo.addItem(SYSTEM_DEFAULT, None)
        for device in found:
            combo.addItem(device.name, device.spec)
            combo.setItemData(
                combo.count() - 1,
                f"{device.name} ({device.hostapi}, {device.default_samplerate:g} Hz)",
                Qt.ItemDataRole.ToolTipRole,
            )
        combo.setCurrentIndex(max(combo.findText(wanted), 0))

    def _device(self, combo: QComboBox) -> DeviceSpec:
        data = combo.currentData()
        return data if isinstance(data, int | str) else None

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
        record = self.record_check.isChecked()
        config = ConversationConfig(
            url=url,
            text_prompt=self.persona,
            voice_prompt=self.voice,
            api_key=self._ctx.owner_key,
            record=record,
            # Created here, not by the recorder, which expects an existing folder.
            recordings_dir=recordings_dir(self._ctx.data_dir) if record else None,
            echo=self.echo_settings,
        )
        self.echo_label.setVisible(False)
        ptt = PushToTalk(
            self.mode,
            duck_gain=DUCK_GAIN if self.duck_check.isChecked() else None,
            speaker_muted=self.mute_check.isChecked(),
        )
        self._held.clear()
        self._toggled = False
        self.transcript.clear()
        self.stats_label.clear()
        self.session.start(
            config,
            input_device=self._device(self.input_combo),
            output_device=self._device(self.output_combo),
            jitter_target_ms=jitter_target(self.jitter_spin.value()),
            ptt=ptt,
        )
        self._update_controls()

    def hang_up(self) -> None:
        self.session.hang_up()

    def _show_state(self, event: StateChanged) -> None:
        self._last_state = event
        self.state_label.setText(TITLES[event.state])
        styled(self.state_label, talk=event.state.value)
        self.detail_label.setText(state_detail(event, self.mode))
        self._update_controls()

    def _finished(self, _state: ConversationState) -> None:
        self._held.clear()
        self._toggled = False
        self.space.let_go()
        self.talking = False
        self.input_meter.set_levels(0.0, 0.0)
        self.output_meter.set_levels(0.0, 0.0)
        self.meter_clock.kick()
        self._update_controls()

    def _gateway_changed(self, _view: GatewayView) -> None:
        if self.isVisible():
            self._fetch_voices_if_needed()
        self._update_controls()

    def _event(self, event: object) -> None:
        if isinstance(event, VoicesChanged):
            self._voices_for = None  # a voice was stored or removed: read the list again
            if self.isVisible():
                self._fetch_voices_if_needed()

    def _fetch_voices_if_needed(self) -> None:
        # Only for a page on screen: the voice list costs a request in the gateway's activity.
        view = self._ctx.gateway.view
        if view.state is GatewayState.RUNNING and view.url and view.url != self._voices_for:
            self._fetch_voices(view.url)

    # -- push-to-talk ---------------------------------------------------------------------------

    @property
    def mode(self) -> PttMode:
        return next((m for m, b in self.mode_buttons.items() if b.isChecked()), PttMode.OPEN)

    def _space_armed(self) -> bool:
        return self.session.active and self.mode is not PttMode.OPEN

    def _mode_toggled(self, mode: PttMode, on: bool) -> None:
        if on:
            self._mode_chosen(mode)

    def _mode_chosen(self, mode: PttMode) -> None:
        self._held.clear()
        self._toggled = False
        self.space.let_go()
        self.session.set_ptt_mode(mode)
        self._remember("mode", mode.value)
        self.detail_label.setText(state_detail(self._last_state, mode))
        self._update_controls()

    def _press(self, source: str) -> None:
        if self.mode is PttMode.TOGGLE:
            self._toggled = not self._toggled
            self.session.press()
        elif self.mode is PttMode.HOLD:
            first = not self._held
            self._held.add(source)
            if first:
                self.session.press()
        self._update_talk_button()

    def _release(self, source: str) -> None:
        if self.mode is PttMode.HOLD and source in self._held:
            self._held.discard(source)
            if not self._held:
                self.session.release()
        self._update_talk_button()

    @property
    def wants_to_talk(self) -> bool:
        """Whether the user asked for an open microphone (the engine confirms via Levels)."""
        if self.mode is PttMode.HOLD:
            return bool(self._held)
        if self.mode is PttMode.TOGGLE:
            return self._toggled
        return True

    def _duck_toggled(self, on: bool) -> None:
        self.session.set_duck_gain(DUCK_GAIN if on else None)
        self._remember("duck", on)

    def _jitter_changed(self, value: int) -> None:
        self.session.set_jitter_target_ms(jitter_target(value))
        self._remember("jitter_ms", value)

    # -- what the conversation reports ----------------------------------------------------------

    def _add_text(self, piece: TextPiece) -> None:
        text = piece.text
        if self.transcript.document().isEmpty():
            text = text.lstrip()
        cursor = self.transcript.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.transcript.setTextCursor(cursor)
        self.transcript.ensureCursorVisible()

    def transcript_text(self) -> str:
        return self.transcript.toPlainText()

    def _show_levels(self, levels: Levels) -> None:
        self.input_meter.set_levels(levels.input_rms, levels.input_peak)
        self.output_meter.set_levels(levels.output_rms, levels.output_peak)
        self.meter_clock.kick()
        if levels.talking != self.talking:
            self.talking = levels.talking
            self._update_talk_button()

    def _show_stats(self, stats: SessionStats) -> None:
        self.last_stats = stats
        self.stats_label.setText(stats_text(stats))

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

        self.session.play(info.wav_path, self._device(self.output_combo), done, failed)

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
        blocker = None if active else self.blocker()
        self.connect_button.setVisible(not active)
        self.connect_button.setEnabled(blocker is None)
        self.connect_button.setToolTip(blocker or "Start a conversation with the model.")
        self.hangup_button.setVisible(active)
        self.hangup_button.setEnabled(active)
        self.blocker_label.setText(blocker or "")
        self.blocker_label.setVisible(bool(blocker))
        usable = self.audio_problem is None and self.scan is not None
        for widget in (self.input_combo, self.output_combo):
            widget.setEnabled(usable and not active)
        self.refresh_button.setEnabled(not active and not self.scanning)
        self.voice_combo.setEnabled(not active)
        self.preset_combo.setEnabled(not active)
        # Read-only rather than disabled: the text can still be selected and copied.
        edit = self.persona_edit
        if edit.isReadOnly() != active:
            edit.setReadOnly(active)
            styled(edit, locked="true" if active else "false")
            edit.setToolTip(
                "The persona is fixed for this conversation; hang up to change it."
                if active
                else "Who the model is and what it knows; edit it before you connect."
            )
        self.record_check.setEnabled(not active)
        headphones = self.headphones_check.isChecked()
        self.headphones_check.setEnabled(not active)
        self.echo_check.setEnabled(not active and not headphones)
        self.noise_check.setEnabled(not active and not headphones)
        self.recordings.set_can_play(not active and usable)
        self._update_talk_button()

    # -- echo ---------------------------------------------------------------------------------

    @property
    def echo_settings(self) -> EchoSettings:
        """Headphones turn all processing off: nothing to cancel, and no latency added."""
        if self.headphones_check.isChecked():
            return EchoSettings(cancel=False, noise_suppression=False)
        return EchoSettings(
            cancel=self.echo_check.isChecked(), noise_suppression=self.noise_check.isChecked()
        )

    def _headphones_toggled(self, on: bool) -> None:
        self._remember("headphones", on)
        self._update_controls()

    def _show_echo(self, event: EchoHeard) -> None:
        self.echo_label.setText(event.sentence)
        self.echo_label.setVisible(event.heard)

    def _update_talk_button(self) -> None:
        mode = self.mode
        live = self.session.active and self.session.state is not S.ERROR
        wants = self.wants_to_talk
        if mode is PttMode.OPEN:
            text = TALK_LABELS[0] if live else TALK_LABELS[1]
        elif mode is PttMode.HOLD:
            text = TALK_LABELS[2] if wants else TALK_LABELS[3]
        else:
            text = TALK_LABELS[4] if wants else TALK_LABELS[5]
        self.talk_button.setText(text)
        self.talk_button.setEnabled(live and mode is not PttMode.OPEN)
        talking = "true" if live and wants else "false"
        if self.talk_button.property("talking") != talking:
            styled(self.talk_button, talking=talking)

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


def _voice(file: str) -> Voice:
    entry = voice_entry(file)
    return Voice(entry["file"], entry["label"])
