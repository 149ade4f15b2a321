"""No two Alt+letter mnemonics on one screen: on each page, the menu bar's, the window's own and
the page's must differ, or Alt+letter silently does one thing and never the other."""

from __future__ import annotations

from collections import defaultdict

from PySide6.QtWidgets import QAbstractButton, QGroupBox, QLabel, QTabBar, QWidget
from pytestqt.qtbot import QtBot

from pplex_desktop.ui.main_window import MainWindow
from pplex_desktop.ui.shell import default_pages
from tests.gui.conftest import Launch
from tests.paced_audio import FakeAudio


def mnemonic(text: str) -> str | None:
    """The letter Qt underlines in ``text`` ("&&" is a literal ampersand), lower case."""
    i = 0
    while i < len(text) - 1:
        if text[i] == "&":
            if text[i + 1] != "&":
                return text[i + 1].lower()
            i += 1
        i += 1
    return None


def texts(widget: QWidget) -> list[str]:
    """The texts of ``widget`` that can carry a mnemonic."""
    if isinstance(widget, QAbstractButton):
        return [widget.text()]
    if isinstance(widget, QGroupBox):
        return [widget.title()]
    if isinstance(widget, QLabel) and widget.buddy() is not None:
        return [widget.text()]
    if isinstance(widget, QTabBar):
        return [widget.tabText(i) for i in range(widget.count())]
    return []


def clashes(owners: list[tuple[str, str]]) -> dict[str, list[str]]:
    by_letter: dict[str, list[str]] = defaultdict(list)
    for letter, owner in owners:
        by_letter[letter].append(owner)
    return {letter: names for letter, names in by_letter.items() if len(names) > 1}


def screen_mnemonics(window: MainWindow, page: QWidget) -> list[tuple[str, str]]:
    """Every mnemonic reachable while ``page`` is shown: the menu bar's titles, the window's
    widgets outside the pages, and the page's widgets in the window (its dialogs are windows of
    their own). Hidden widgets count too: a button shown later (Hang up) must not clash."""
    found: list[tuple[str, str]] = []
    for action in window.menuBar().actions():
        letter = mnemonic(action.text())
        if letter:
            found.append((letter, f"menu {action.text()!r}"))
    pages = list(window.pages.values())
    for widget in window.findChildren(QWidget):
        if widget.window() is not window:
            continue
        inside = next((p for p in pages if p is widget or p.isAncestorOf(widget)), None)
        if inside is not None and inside is not page:
            continue
        for text in texts(widget):
            letter = mnemonic(text)
            if letter:
                found.append((letter, f"{type(widget).__name__} {text!r}"))
    return found


def test_the_mnemonic_helper_reads_qt_texts() -> None:
    assert mnemonic("To&ggle") == "g"
    assert mnemonic("Rock && &Roll") == "r"
    assert mnemonic("Fish && chips") is None
    assert clashes([("g", "menu"), ("g", "button"), ("m", "x")]) == {"g": ["menu", "button"]}


def test_no_page_has_two_mnemonics_on_one_letter(qtbot: QtBot, launch: Launch) -> None:
    shell = launch(pages=default_pages(FakeAudio()))
    window = shell.window
    assert window.pages, "the window has no pages"
    seen_any = False
    for key, page in window.pages.items():
        window.show_page(key)
        found = screen_mnemonics(window, page)
        seen_any = seen_any or any(owner.startswith("menu") for _, owner in found)
        assert not clashes(found), f"the {key} page has mnemonic clashes: {clashes(found)}"
    assert seen_any, "the menu bar's mnemonics were not seen"
