"""The Talk page on the real app: a real gateway (port 0), the demo backend (pplex-sim) behind it,
the conversation on its own thread, and simulated sound devices that run in real time.

pplex-sim echoes what it hears (after 4 frames in demo mode) and speaks the persona's words as
text, so what the model "heard" and "said" can be checked end to end through the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import cast

import pytest
import soundfile as sf
from PySide6.QtCore import QRect, Qt, QUrl
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from pplex_desktop.audio.echo import ECHO_SENTENCE, EchoSettings
from pplex_desktop.audio.events import ConversationState, EchoHeard, StateChanged
from pplex_desktop.audio.ptt import PttMode
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.personas import PRESETS
from pplex_desktop.gateway.server import GatewayState
from pplex_desktop.moshi.client import MoshiSession, SessionOptions
from pplex_desktop.ui.look import style_sheet
from pplex_desktop.ui.shell import DesktopShell, default_pages
from pplex_desktop.ui.talk.live_panel import TALK_LABELS, LivePanel
from tests.gui.conftest import WAIT_MS, Launch, url_of
from tests.paced_audio import FakeAudio, PacedFakeDevice
from tests.signals import rms

S = ConversationState
PERSONA = PRESETS[1].text  # "You enjoy having a good conversation."
TONE = 0.3


def open_talk(qtbot: QtBot, launch: Launch, audio: FakeAudio) -> tuple[DesktopShell, LivePanel]:
    shell = launch(pages=default_pages(audio))
    panel = shell.window.show_page("live")
    assert isinstance(panel, LivePanel)
    return shell, panel


def ready(qtbot: QtBot, panel: LivePanel) -> None:
    qtbot.waitUntil(panel.connect_button.isEnabled, timeout=WAIT_MS)


def states_of(panel: LivePanel) -> list[StateChanged]:
    seen: list[StateChanged] = []
    panel.session.state_changed.connect(seen.append)
    return seen


def connect(qtbot: QtBot, panel: LivePanel) -> None:
    qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
    assert panel.session.active


def hang_up(qtbot: QtBot, panel: LivePanel) -> None:
    with qtbot.waitSignal(panel.session.finished, timeout=WAIT_MS):
        qtbot.mouseClick(panel.hangup_button, Qt.MouseButton.LeftButton)


def wait_frames(qtbot: QtBot, device: PacedFakeDevice, frames: int) -> None:
    """Wait until the model has sent ``frames`` more frames (80 ms each) to the speaker."""
    target = device.received_samples + frames * 1920
    qtbot.waitUntil(lambda: device.received_samples >= target, timeout=WAIT_MS)


def test_a_conversation_through_the_gateway(qtbot: QtBot, launch: Launch) -> None:
    audio = FakeAudio()
    shell, panel = open_talk(qtbot, launch, audio)
    ready(qtbot, panel)
    assert panel.state_label.text() == "Not connected"
    assert not panel.hangup_button.isVisible()
    # The voices are the gateway's own list, asked for with the app's key.
    qtbot.waitUntil(lambda: panel.voices_from == url_of(shell), timeout=WAIT_MS)
    assert panel.voice_combo.count() == 18 and panel.voice == "NATF2.pt"
    assert panel.voice_combo.currentText() == "NATF2 (natural female)"
    panel.preset_combo.setCurrentIndex(1)
    panel.preset_combo.activated.emit(1)
    assert panel.persona == PERSONA
    seen = states_of(panel)
    connect(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    order = [e.state for e in seen]
    assert order[:1] == [S.CONNECTING] and S.PREPARING in order
    assert order.index(S.PREPARING) < order.index(S.LIVE)
    assert panel.state_label.text() == "Live"
    assert panel.hangup_button.isVisible() and not panel.connect_button.isVisible()
    assert not panel.voice_combo.isEnabled(), "the voice is fixed for the conversation"

    # The model speaks the persona's words; they are joined into one line.
    qtbot.waitUntil(lambda: PERSONA in panel.transcript_text(), timeout=WAIT_MS)
    assert panel.transcript_text().startswith("You enjoy")
    # Through our gateway, with the persona and voice the page chose.
    runner = shell.services.server.runner
    assert runner is not None and runner.demo is not None
    query = runner.demo.stats.queries[-1]
    assert query["text_prompt"] == PERSONA
    assert query["voice_prompt"] == panel.voice

    # A tone into the microphone moves the input meter, and its echo the output meter.
    assert panel.input_meter.level_db < -50
    audio.device.mic_amplitude = TONE
    qtbot.waitUntil(lambda: panel.input_meter.level_db > -15, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.output_meter.level_db > -25, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.meter_clock.repaints > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.stats_label.text().startswith("Round trip"), timeout=WAIT_MS)
    assert panel.last_stats is not None and panel.last_stats.frames_sent > 0

    hang_up(qtbot, panel)
    assert panel.session.state is S.ENDED
    assert panel.state_label.text() == "Ended"
    assert panel.detail_label.text() == "You hung up."
    assert panel.connect_button.isVisible() and panel.connect_button.isEnabled()
    assert audio.device.stopped


def test_push_to_talk_with_space_and_the_button(qtbot: QtBot, launch: Launch) -> None:
    audio = FakeAudio()
    audio.mic_amplitude = TONE  # the user's microphone hears a tone all along
    _shell, panel = open_talk(qtbot, launch, audio)
    ready(qtbot, panel)
    panel.mode_buttons[PttMode.HOLD].click()
    assert panel.talk_button.text() == "Hold to talk (Space)"
    connect(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    device = audio.device
    assert panel.talk_button.isEnabled()

    # Nothing held: frames keep flowing, but the model hears (and echoes) silence.
    wait_frames(qtbot, device, 10)
    assert rms(device.recent_received(6)) < 0.01
    qtbot.waitUntil(lambda: panel.input_meter.level_db > -15, timeout=WAIT_MS)
    assert not panel.talking

    # Space held while the page has focus: the tone reaches the model and comes back.
    panel.setFocus()
    qtbot.keyPress(panel, Qt.Key.Key_Space)
    assert panel.wants_to_talk and panel.talk_button.text().startswith("Talking")
    qtbot.waitUntil(lambda: panel.talking, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rms(device.recent_received(2)) > 0.1, timeout=WAIT_MS)
    qtbot.keyRelease(panel, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not panel.talking, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rms(device.recent_received(2)) < 0.01, timeout=WAIT_MS)

    # During a call the persona box is read-only, so Space there talks like anywhere else;
    # typing a space where one can type (the buffer's spin box) stays typing.
    assert panel.persona_edit.isReadOnly()
    panel.jitter_spin.setFocus()
    qtbot.keyPress(panel.jitter_spin, Qt.Key.Key_Space)
    # cast: mypy keeps the value an earlier assert saw, but the key presses change it.
    assert not cast(bool, panel.wants_to_talk) and not panel.space.held
    qtbot.keyRelease(panel.jitter_spin, Qt.Key.Key_Space)

    # The big button, held with the mouse.
    qtbot.mousePress(panel.talk_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.talking, timeout=WAIT_MS)
    qtbot.mouseRelease(panel.talk_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.talking, timeout=WAIT_MS)

    # Toggle mode, switched during the call: one tap on, one tap off.
    panel.mode_buttons[PttMode.TOGGLE].click()
    assert panel.talk_button.text() == "Press to talk (Space)"
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: panel.talking, timeout=WAIT_MS)
    qtbot.keyClick(panel, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not panel.talking, timeout=WAIT_MS)
    hang_up(qtbot, panel)


@pytest.fixture
def other_caller(launch: Launch) -> Iterator[LoopThread]:
    thread = LoopThread("test-other-caller")
    thread.start()
    yield thread
    thread.stop()


def test_the_queue_position_shows_while_the_backend_is_busy(
    qtbot: QtBot, launch: Launch, other_caller: LoopThread
) -> None:
    audio = FakeAudio()
    shell, panel = open_talk(qtbot, launch, audio)
    ready(qtbot, panel)
    other_key = shell.services.keystore.create("a LAN client").key
    holder = other_caller.run(
        MoshiSession.connect(url_of(shell), SessionOptions(api_key=other_key)), timeout=20
    )
    try:
        connect(qtbot, panel)
        qtbot.waitUntil(lambda: panel.session.state is S.QUEUED, timeout=WAIT_MS)
        assert panel.state_label.text() == "Waiting in the queue"
        assert "you are next in line" in panel.detail_label.text()
    finally:
        other_caller.run(holder.close(), timeout=10)
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    hang_up(qtbot, panel)


@pytest.mark.parametrize(
    ("audio", "sentence"),
    [
        (
            FakeAudio(unavailable="PortAudio, the library that reaches sound devices, is missing."),
            "PortAudio, the library that reaches sound devices, is missing. The rest of the app "
            "works without sound.",
        ),
        (FakeAudio(no_devices=True), "No sound device was found"),
    ],
    ids=["no-portaudio", "no-devices"],
)
def test_without_a_sound_device_talking_is_explained_and_disabled(
    qtbot: QtBot, launch: Launch, audio: FakeAudio, sentence: str
) -> None:
    shell, panel = open_talk(qtbot, launch, audio)
    qtbot.waitUntil(lambda: sentence in panel.blocker_label.text(), timeout=WAIT_MS)
    assert panel.blocker_label.isVisible()
    assert not panel.connect_button.isEnabled()
    assert sentence in panel.connect_button.toolTip()
    assert not panel.input_combo.isEnabled() and not panel.talk_button.isEnabled()
    # The rest of the app does not care.
    assert shell.gateway.view.state is GatewayState.RUNNING
    assert shell.window.show_page("keys").isVisible()


def test_connect_says_why_while_the_gateway_is_stopped(qtbot: QtBot, launch: Launch) -> None:
    shell, panel = open_talk(qtbot, launch, FakeAudio())
    ready(qtbot, panel)
    shell.gateway.stop()
    qtbot.waitUntil(lambda: shell.gateway.view.state is GatewayState.STOPPED, timeout=WAIT_MS)
    assert not panel.connect_button.isEnabled()
    assert "The gateway is not running" in panel.blocker_label.text()
    assert "Server page" in panel.connect_button.toolTip()
    shell.gateway.start()
    ready(qtbot, panel)
    assert not panel.blocker_label.isVisible()


def test_a_recorded_conversation_is_listed_played_and_deleted(qtbot: QtBot, launch: Launch) -> None:
    audio = FakeAudio()
    shell, panel = open_talk(qtbot, launch, audio)
    ready(qtbot, panel)
    box = panel.recordings
    assert box.empty_label.isVisible() and box.list.count() == 0
    panel.record_check.setChecked(True)
    connect(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    audio.device.mic_amplitude = TONE
    wait_frames(qtbot, audio.device, 12)
    hang_up(qtbot, panel)

    qtbot.waitUntil(lambda: box.list.count() == 1, timeout=WAIT_MS)
    info = box.selected()
    assert info is not None and info.wav_path.exists()
    assert info.wav_path.parent == shell.services.data_dir / "recordings"
    data, rate = sf.read(str(info.wav_path), dtype="float32")
    assert rate == 24_000 and data.shape[1] == 2 and data.shape[0] > 24_000 // 2
    assert rms(data[:, 0]) > 0.05, "the left channel holds what the model heard"
    assert json.loads(info.json_path.read_text())["persona"] == panel.persona
    assert info.text and info.text in PRESETS[0].text
    assert box.list.item(0).text().endswith(f"“{info.text}”")

    opened: list[QUrl] = []
    box.open_url = opened.append
    qtbot.mouseClick(box.folder_button, Qt.MouseButton.LeftButton)
    assert opened == [QUrl.fromLocalFile(str(shell.services.data_dir / "recordings"))]

    qtbot.mouseClick(box.play_button, Qt.MouseButton.LeftButton)
    assert box.play_button.text() == "Stop"
    qtbot.waitUntil(lambda: audio.played == [info.wav_path], timeout=WAIT_MS)
    qtbot.mouseClick(box.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: box.play_button.text() == "Play", timeout=WAIT_MS)

    qtbot.mouseClick(box.delete_button, Qt.MouseButton.LeftButton)
    confirm = box.confirm_box
    assert confirm is not None and info.wav_path.name in confirm.text()
    confirm.button(QMessageBox.StandardButton.Cancel).click()
    assert info.wav_path.exists()
    qtbot.mouseClick(box.delete_button, Qt.MouseButton.LeftButton)
    confirm = box.confirm_box
    assert confirm is not None
    delete = next(b for b in confirm.buttons() if b.text() == "Delete")
    delete.click()
    qtbot.waitUntil(lambda: box.list.count() == 0, timeout=WAIT_MS)
    assert not info.wav_path.exists() and not info.json_path.exists()
    assert box.empty_label.isVisible()


def test_the_layout_stays_put_and_the_big_button_fits(
    qtbot: QtBot, launch: Launch, qapp: QApplication
) -> None:
    qapp.setStyleSheet(style_sheet())  # the real app's fonts: the big button is 12 pt bold
    try:
        shell, panel = open_talk(qtbot, launch, FakeAudio())
        ready(qtbot, panel)
        # Even squeezed to the smallest the window allows, every label of the button fits.
        shell.window.resize(400, 300)  # Qt keeps it at what the layouts need at least
        qtbot.wait(50)
        button = panel.talk_button
        for text in TALK_LABELS:
            needed = button.fontMetrics().horizontalAdvance(text)
            assert needed < button.width() - 8, f"“{text}” is cut: {needed} px in {button.width()}"
        shell.window.resize(1080, 700)
        qtbot.waitUntil(lambda: shell.window.width() == 1080)

        def places(header: QWidget) -> list[QRect]:
            widgets = (panel.transcript, button, panel.stats_label, panel.state_label, header)
            return [w.geometry() for w in widgets]

        before = places(panel.connect_button)
        connect(qtbot, panel)
        qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: panel.stats_label.text() != "", timeout=WAIT_MS)
        qtbot.wait(50)
        during = places(panel.hangup_button)
        hang_up(qtbot, panel)
        qtbot.wait(50)  # the layout settles in the next turn of the loop, before a repaint
        after = places(panel.connect_button)
        assert before == during == after, "nothing moved when the call started or ended"
    finally:
        qapp.setStyleSheet("")


def test_the_persona_is_visibly_read_only_during_a_call(
    qtbot: QtBot, launch: Launch, qapp: QApplication
) -> None:
    qapp.setStyleSheet(style_sheet())
    try:
        _shell, panel = open_talk(qtbot, launch, FakeAudio())
        ready(qtbot, panel)
        edit = panel.persona_edit

        def background() -> QColor:
            return edit.viewport().grab().toImage().pixelColor(2, 2)

        editable = background()
        assert not edit.isReadOnly()
        connect(qtbot, panel)
        qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
        before = edit.toPlainText()
        edit.setFocus()
        qtbot.keyClicks(edit, "more")
        assert edit.toPlainText() == before, "the persona cannot change during a call"
        assert edit.isReadOnly() and "hang up" in edit.toolTip()
        assert background() != editable, "and it looks it"
        hang_up(qtbot, panel)
        assert not edit.isReadOnly()
        assert background() == editable
    finally:
        qapp.setStyleSheet("")


def test_open_folder_without_a_file_manager_says_where_the_folder_is(
    qtbot: QtBot, launch: Launch, qapp: QApplication
) -> None:
    shell, panel = open_talk(qtbot, launch, FakeAudio())
    box = panel.recordings
    asked: list[QUrl] = []

    def no_file_manager(url: QUrl) -> bool:
        asked.append(url)
        return False  # what QDesktopServices.openUrl says when nothing can open it

    box.open_url = no_file_manager
    assert not box.folder_note.isVisible()
    qtbot.mouseClick(box.folder_button, Qt.MouseButton.LeftButton)
    folder = shell.services.data_dir / "recordings"
    assert asked == [QUrl.fromLocalFile(str(folder))] and folder.is_dir()
    assert box.folder_note.isVisible() and str(folder) in box.folder_note.text()
    assert "No file manager" in box.folder_note.text()
    qtbot.mouseClick(box.copy_button, Qt.MouseButton.LeftButton)
    assert qapp.clipboard().text() == str(folder)
    assert box.copy_button.text() == "Copied"
    # With a file manager, the note goes away.
    box.open_url = asked.append
    qtbot.mouseClick(box.folder_button, Qt.MouseButton.LeftButton)
    assert not box.folder_note.isVisible()


def test_stopping_the_gateway_mid_call_says_why_the_call_ended(
    qtbot: QtBot, launch: Launch
) -> None:
    shell, panel = open_talk(qtbot, launch, FakeAudio())
    ready(qtbot, panel)
    connect(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    with qtbot.waitSignal(panel.session.finished, timeout=WAIT_MS):
        shell.gateway.stop()
    assert panel.session.state is S.ENDED
    detail = panel.detail_label.text()
    # The gateway's own reason (1001 and a sentence), not "the server ended the conversation".
    assert detail.startswith("The conversation ended: the gateway"), detail
    assert "server ended the conversation" not in detail


def test_echo_cancellation_is_on_unless_headphones_and_an_echo_is_explained(
    qtbot: QtBot, launch: Launch
) -> None:
    audio = FakeAudio()
    _shell, panel = open_talk(qtbot, launch, audio)
    ready(qtbot, panel)
    assert panel.echo_check.isChecked() and not panel.noise_check.isChecked()
    assert not panel.headphones_check.isChecked()
    assert panel.echo_settings == EchoSettings(cancel=True, noise_suppression=False)
    panel.noise_check.setChecked(True)
    assert panel.echo_settings.noise_suppression
    panel.headphones_check.setChecked(True)
    # Headphones: nothing to cancel, no processing at all, and the two options say so.
    assert panel.echo_settings == EchoSettings(cancel=False, noise_suppression=False)
    assert not panel.echo_check.isEnabled() and not panel.noise_check.isEnabled()
    panel.headphones_check.setChecked(False)
    assert panel.echo_check.isEnabled() and panel.echo_settings.cancel

    connect(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    for box in (panel.echo_check, panel.headphones_check, panel.noise_check):
        assert not box.isEnabled(), "fixed for the call"
    assert not panel.echo_label.isVisible()
    panel.session.echo_heard.emit(EchoHeard(True, ECHO_SENTENCE))
    assert panel.echo_label.isVisible() and "headphones" in panel.echo_label.text()
    panel.session.echo_heard.emit(EchoHeard(False))
    assert not panel.echo_label.isVisible()
    hang_up(qtbot, panel)
