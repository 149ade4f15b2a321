"""Helpers for the Offline page tests: real speech files, simulated drops, the page's rows."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from pplex_desktop.desktop.offline_record import Item, ItemState
from pplex_desktop.ui.offline.offline_panel import OfflinePanel
from pplex_desktop.ui.shell import DesktopShell
from tests.gateway.offline_support import speech_wav

PERSONA = "You are a sarcastic robot who loves tea."
SLUG = "you-are-a-sarcastic-robot-who"
JOB_WAIT_MS = 60_000
SENTENCES = (
    "What time does the shop open?",
    "Tell me a joke about bicycles.",
    "How do I fix a flat tire?",
)


def spoken_files(folder: Path, names: tuple[str, ...] = ("one", "two", "three")) -> list[Path]:
    """Short espeak-ng sentences at different rates and channel counts, and nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    formats = ((16_000, 1), (22_050, 1), (48_000, 2))
    made: list[Path] = []
    with tempfile.TemporaryDirectory() as scratch:  # espeak's own file must not join a batch
        for i, name in enumerate(names):
            rate, channels = formats[i % 3]
            spoken = speech_wav(
                Path(scratch), name, rate=rate, channels=channels, text=SENTENCES[i % 3]
            )
            made.append(Path(shutil.move(spoken, folder / spoken.name)))
    return made


def offline_page(shell: DesktopShell) -> OfflinePanel:
    page = shell.window.show_page("offline")
    assert isinstance(page, OfflinePanel)
    return page


def ready_page(qtbot: QtBot, shell: DesktopShell, *, silence_s: float = 1.0) -> OfflinePanel:
    """The page with our persona, NATF2 and a short silence, once its jobs are its own."""
    page = offline_page(shell)
    qtbot.waitUntil(lambda: page.queue.ready, timeout=15_000)
    page.form.add_persona(PERSONA)
    page.form.tick(page.form.personas, [PERSONA])
    page.form.tick(page.form.voices, ["NATF2"])
    page.form.silence.setValue(silence_s)
    return page


def drop(page: OfflinePanel, paths: list[Path]) -> None:
    """Drag and drop file URLs onto the page, as a file manager does."""
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    where = page.rect().center()
    enter = QDragEnterEvent(
        where,
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(page, enter)
    assert enter.isAccepted()
    dropped = QDropEvent(
        QPointF(QPoint(where)),
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(page, dropped)
    assert dropped.isAccepted()


def rows(page: OfflinePanel) -> list[Item]:
    return page.model.items()


def all_final(page: OfflinePanel, count: int) -> bool:
    items = rows(page)
    return len(items) == count and all(i.state.final for i in items)


def states(page: OfflinePanel) -> list[ItemState]:
    return [i.state for i in rows(page)]


def slow_backend(shell: DesktopShell, frame_delay_s: float) -> None:
    """Make the demo model server slow (per 80 ms frame), from its next conversation on."""
    runner = shell.services.server.runner
    assert runner is not None and runner.demo is not None
    runner.demo.config = dataclasses.replace(runner.demo.config, frame_delay_s=frame_delay_s)
