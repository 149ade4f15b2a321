"""Settings → Voices: record a voice from the (simulated) microphone, listen, name it, consent,
save; it lands in the demo backend's voice folder and appears in the Talk and Offline pickers
and in GET /v1/voices. Import, refusals and removal too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from pplex_desktop.ui.offline.offline_panel import OfflinePanel
from pplex_desktop.ui.settings.voices_tab import VoicesTab
from pplex_desktop.ui.shell import DesktopShell, default_pages
from pplex_desktop.ui.talk.live_panel import LivePanel
from tests.gui.conftest import WAIT_MS, Launch, http
from tests.paced_audio import FakeAudio
from tests.voice_samples import speechlike, wav_bytes


def open_voices(qtbot: QtBot, launch: Launch, audio: FakeAudio) -> tuple[DesktopShell, VoicesTab]:
    shell = launch(pages=default_pages(audio))
    shell.services.audio = audio
    dialog = shell.open_settings()
    dialog.tabs.setCurrentWidget(dialog.voices_tab)
    tab = dialog.voices_tab
    qtbot.waitUntil(lambda: any(f.writable for f in tab.folders), timeout=WAIT_MS)
    return shell, tab


def offline_voices(panel: OfflinePanel) -> list[str]:
    items = panel.form.voices
    return [str(items.item(r).data(Qt.ItemDataRole.UserRole)) for r in range(items.count())]


def test_record_listen_save_and_pick(qtbot: QtBot, launch: Launch) -> None:
    audio = FakeAudio()
    audio.mic_amplitude = 1.0
    audio.mic_pcm = speechlike(6.0, level=0.2)
    shell, tab = open_voices(qtbot, launch, audio)
    talk = shell.window.show_page("live")
    assert isinstance(talk, LivePanel)
    offline = shell.window.show_page("offline")
    assert isinstance(offline, OfflinePanel)
    shell.window.show_page("live")
    qtbot.waitUntil(lambda: talk.voice_combo.count() > 0, timeout=WAIT_MS)
    assert talk.voice_combo.findData("gui-voice.wav") < 0
    assert not tab.save_button.isEnabled()

    qtbot.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
    assert tab.recording and tab.record_button.text() == "&Stop"
    qtbot.waitUntil(lambda: tab.meter.level_db > -30, timeout=WAIT_MS)  # the meter moves
    # 80 ms per block in real time: about 6 s of "speech".
    qtbot.waitUntil(lambda: tab.meter.reports >= 75, timeout=WAIT_MS)
    qtbot.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.take is not None, timeout=WAIT_MS)
    assert tab.record_button.text() == "&Record"  # recording has ended
    assert "Your recording, 6." in tab.take_label.text()

    qtbot.mouseClick(tab.listen_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: audio.played == [tab.take], timeout=WAIT_MS)

    take = tab.take
    assert take is not None and take.is_file()
    qtbot.keyClicks(tab.name_edit, "gui-voice")
    assert not tab.save_button.isEnabled()  # no consent yet
    tab.consent.setChecked(True)
    assert tab.save_button.isEnabled()
    qtbot.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(tab.saved), timeout=WAIT_MS)
    assert "Saved gui-voice" in tab.message.text()
    qtbot.waitUntil(lambda: not take.exists(), timeout=WAIT_MS)  # the take is not kept

    folder = shell.services.data_dir / "voices"
    assert sorted(p.name for p in folder.iterdir()) == [
        "gui-voice.wav",
        "gui-voice.wav.consent.json",
    ]
    qtbot.waitUntil(lambda: tab.voice_list.count() == 1, timeout=WAIT_MS)
    url = shell.gateway.view.url
    assert url is not None
    status, body = http(url + "/v1/voices")
    assert status == 200
    assert {"id": "gui-voice.wav", "custom": True}.items() <= {
        k: v for v in body["voices"] if v["id"] == "gui-voice.wav" for k, v in v.items()
    }.items()
    qtbot.waitUntil(lambda: talk.voice_combo.findData("gui-voice.wav") >= 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "gui-voice.wav" in offline_voices(offline), timeout=WAIT_MS)

    tab.voice_list.setCurrentRow(0)
    qtbot.mouseClick(tab.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.voice_list.count() == 0, timeout=WAIT_MS)
    assert list(folder.iterdir()) == []
    qtbot.waitUntil(lambda: talk.voice_combo.findData("gui-voice.wav") < 0, timeout=WAIT_MS)


def test_an_imported_file_that_is_too_short_is_refused_with_the_reason(
    qtbot: QtBot, launch: Launch, tmp_path: Path
) -> None:
    _shell, tab = open_voices(qtbot, launch, FakeAudio())
    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(speechlike(2.0)))
    tab.import_file(short)
    assert tab.name_edit.text() == "short"
    tab.consent.setChecked(True)
    qtbot.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "at least 5 seconds" in tab.message.text(), timeout=WAIT_MS)
    assert tab.message.property("role") == "error"
    assert not tab.saved


def test_a_silent_recording_is_refused(qtbot: QtBot, launch: Launch, tmp_path: Path) -> None:
    _shell, tab = open_voices(qtbot, launch, FakeAudio())
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(np.zeros(24_000 * 8, np.float32)))
    tab.import_file(quiet)
    tab.consent.setChecked(True)
    qtbot.mouseClick(tab.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "silent" in tab.message.text(), timeout=WAIT_MS)
    assert not tab.saved


def test_a_backend_without_a_voice_folder_is_listed_read_only(qtbot: QtBot, launch: Launch) -> None:
    shell = launch(demo=False, pages=default_pages(FakeAudio()))
    shell.services.audio = FakeAudio()
    tab = shell.open_settings().voices_tab
    qtbot.waitUntil(lambda: tab.voice_list.count() == 1, timeout=WAIT_MS)
    text = tab.voice_list.item(0).text()
    assert "read-only" in text and "No voice folder is set for this model server." in text
    tab.import_file(Path("/nonexistent/take.wav"))
    tab.name_edit.setText("mine")
    tab.consent.setChecked(True)
    assert not tab.save_button.isEnabled()
