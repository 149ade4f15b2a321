"""What the window remembers (page, size, talk mode, persona) belongs to its data folder."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from pplex_desktop.audio.ptt import PttMode
from pplex_desktop.desktop.ui_state import UI_STATE_NAME
from pplex_desktop.ui.main_window import DEFAULT_SIZE
from pplex_desktop.ui.shell import DesktopShell, default_pages
from pplex_desktop.ui.talk.live_panel import LivePanel
from tests.gui.conftest import Launch, quit_gracefully
from tests.paced_audio import FakeAudio


def talk_page(shell: DesktopShell) -> LivePanel:
    page = shell.window.pages["live"]
    assert isinstance(page, LivePanel)
    return page


def open_folder(launch: Launch, folder: Path) -> tuple[DesktopShell, LivePanel]:
    shell = launch(data_dir=folder, pages=default_pages(FakeAudio()))
    return shell, talk_page(shell)


def test_two_data_folders_keep_separate_ui_state(
    qtbot: QtBot, launch: Launch, tmp_path: Path, ui_state_dir: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"

    shell, talk = open_folder(launch, first)
    shell.window.resize(shell.window.width(), 520)
    shell.window.show_page("activity")
    talk.mode_buttons[PttMode.HOLD].click()
    talk.persona_edit.setPlainText("You are the first folder's persona.")
    quit_gracefully(qtbot, shell)
    saved = json.loads((first / UI_STATE_NAME).read_text(encoding="utf-8"))
    assert saved["window/page"] == "activity"
    assert saved["talk/mode"] == PttMode.HOLD.value

    # A fresh folder starts fresh: nothing of the first folder's window or talk choices.
    shell, talk = open_folder(launch, second)
    assert shell.window.current_key == "server"
    assert shell.window.height() == DEFAULT_SIZE.height() != 520
    assert talk.mode_buttons[PttMode.OPEN].isChecked()
    assert talk.persona_edit.toPlainText() != "You are the first folder's persona."
    shell.window.show_page("keys")
    talk.mode_buttons[PttMode.TOGGLE].click()
    quit_gracefully(qtbot, shell)

    shell, talk = open_folder(launch, first)
    assert shell.window.current_key == "activity"
    assert shell.window.height() == 520
    assert talk.mode_buttons[PttMode.HOLD].isChecked()
    assert talk.persona_edit.toPlainText() == "You are the first folder's persona."
    quit_gracefully(qtbot, shell)

    shell, talk = open_folder(launch, second)
    assert shell.window.current_key == "keys"
    assert talk.mode_buttons[PttMode.TOGGLE].isChecked()
    quit_gracefully(qtbot, shell)
    # Nothing went to the user's Qt settings, which every data folder would share.
    assert not any(ui_state_dir.rglob("*.ini"))


def test_a_damaged_state_file_starts_over(qtbot: QtBot, launch: Launch, tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / UI_STATE_NAME).write_text("{not json", encoding="utf-8")
    shell, _talk = open_folder(launch, folder)
    assert shell.window.current_key == "server"
    shell.window.show_page("keys")
    quit_gracefully(qtbot, shell)
    assert json.loads((folder / UI_STATE_NAME).read_text(encoding="utf-8"))["window/page"] == "keys"
