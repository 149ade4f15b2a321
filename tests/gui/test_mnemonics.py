"""No two Alt+letter mnemonics on one screen: on each page, the menu bar's, the window's own and
the page's must differ, or Alt+letter silently does one thing and never the other."""

from __future__ import annotations

from collections import defaultdict

from PySide6.QtWidgets import QAbstractButton, QGroupBox, QLabel, QMainWindow, QTabBar, QWidget
from pytestqt.qtbot import QtBot

from pplex_desktop.ui.keys.key_dialogs import KeyLimitsDialog
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


def screen_mnemonics(
    window: QWidget, scopes: list[QWidget], shown: QWidget | None
) -> list[tuple[str, str]]:
    """Every mnemonic reachable while ``shown`` (one of ``scopes``: pages, tabs) is on screen:
    a main window's menu bar titles, the window's widgets outside the scopes, and the shown
    scope's (dialogs are windows of their own). Hidden widgets count too: a button shown later
    (Hang up) must not clash."""
    found: list[tuple[str, str]] = []
    if isinstance(window, QMainWindow):
        for action in window.menuBar().actions():
            letter = mnemonic(action.text())
            if letter:
                found.append((letter, f"menu {action.text()!r}"))
    for widget in window.findChildren(QWidget):
        if widget.window() is not window:
            continue
        inside = next((p for p in scopes if p is widget or p.isAncestorOf(widget)), None)
        if inside is not None and inside is not shown:
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
        found = screen_mnemonics(window, list(window.pages.values()), page)
        seen_any = seen_any or any(owner.startswith("menu") for _, owner in found)
        assert not clashes(found), f"the {key} page has mnemonic clashes: {clashes(found)}"
    assert seen_any, "the menu bar's mnemonics were not seen"


def test_no_settings_tab_or_key_dialog_has_two_mnemonics_on_one_letter(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch(pages=default_pages(FakeAudio()))
    dialog = shell.open_settings()
    tabs = [t for i in range(dialog.tabs.count()) if (t := dialog.tabs.widget(i)) is not None]
    assert len(tabs) > 1
    for index, tab in enumerate(tabs):
        dialog.tabs.setCurrentIndex(index)
        found = screen_mnemonics(dialog, tabs, tab)
        title = dialog.tabs.tabText(index)
        assert not clashes(found), f"the {title} tab has mnemonic clashes: {clashes(found)}"
    dialog.reject()
    key_dialog = KeyLimitsDialog(shell.window, title="New API key", rpm=60, max_sessions=1)
    found = screen_mnemonics(key_dialog, [], None)
    assert any(owner == "QCheckBox 'May store and remove &voices'" for _, owner in found)
    assert not clashes(found), f"the key dialog has mnemonic clashes: {clashes(found)}"
    key_dialog.deleteLater()
