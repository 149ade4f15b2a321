"""The Talk page's playback buffer: adaptive by default, a fixed value when chosen and kept."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from pplex_desktop.audio.events import ConversationState
from pplex_desktop.ui.shell import DesktopShell, default_pages
from pplex_desktop.ui.talk.live_panel import LivePanel
from tests.gui.conftest import WAIT_MS, Launch, quit_gracefully
from tests.paced_audio import FakeAudio

S = ConversationState


def talk_page(launch: Launch, audio: FakeAudio) -> tuple[DesktopShell, LivePanel]:
    shell = launch(pages=default_pages(audio))
    panel = shell.window.show_page("live")
    assert isinstance(panel, LivePanel)
    return shell, panel


def test_the_buffer_is_adaptive_by_default_and_a_fixed_one_is_remembered(
    qtbot: QtBot, launch: Launch
) -> None:
    audio = FakeAudio()
    shell, panel = talk_page(launch, audio)
    qtbot.waitUntil(panel.connect_button.isEnabled, timeout=WAIT_MS)
    assert panel.jitter_spin.value() == 0 and panel.jitter_spin.text() == "Adaptive"
    panel.connect_button.click()
    qtbot.waitUntil(lambda: panel.session.state is S.LIVE, timeout=WAIT_MS)
    assert audio.opened[-1][2] is None, "None asks the device for the adaptive buffer"
    assert audio.device.jitter.adaptive
    qtbot.waitUntil(lambda: "(adaptive)" in panel.stats_label.text(), timeout=WAIT_MS)

    # A fixed value during the call applies at once, and is what the page opens with next time.
    panel.jitter_spin.setValue(200)
    qtbot.waitUntil(lambda: not audio.device.jitter.adaptive, timeout=WAIT_MS)
    assert audio.device.jitter.target_ms == 200.0
    qtbot.waitUntil(lambda: "of 200 ms ·" in panel.stats_label.text(), timeout=WAIT_MS)
    with qtbot.waitSignal(panel.session.finished, timeout=WAIT_MS):
        panel.hangup_button.click()

    quit_gracefully(qtbot, shell)

    shell, again = talk_page(launch, FakeAudio())
    assert again.jitter_spin.value() == 200 and again.jitter_spin.text() == "200 ms"
    again.jitter_spin.setValue(0)
    quit_gracefully(qtbot, shell)
    _, third = talk_page(launch, FakeAudio())
    assert third.jitter_spin.text() == "Adaptive"
