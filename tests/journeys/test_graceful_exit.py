"""SIGTERM and SIGINT end the app within 5 s whatever dialog is open (a nested event loop such
as a file dialog's included); the welcome and a live call are covered by their journeys."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.journeys.conftest import Launch
from tests.journeys.harness import EXIT_BUDGET_S, Screen


def settings(screen: Screen) -> str:
    screen.key("ctrl+comma")
    return "^Settings$"


def about_box(screen: Screen) -> str:
    screen.key("alt+h")
    screen.key("Return")  # the Help menu's only entry: About
    return "^About pplex-desktop$"


def file_dialog(screen: Screen) -> str:
    screen.key("ctrl+3", "alt+a")  # Offline, "Add files…": QFileDialog's own event loop
    return "^Add audio files$"


OPENERS: dict[str, Callable[[Screen], str]] = {
    "settings": settings,
    "message box": about_box,
    "file dialog": file_dialog,
}


@pytest.mark.parametrize(
    ("state", "how"),
    [
        ("settings", signal.SIGTERM),
        ("message box", signal.SIGINT),
        ("file dialog", signal.SIGTERM),
        ("file dialog", signal.SIGINT),
    ],
)
def test_a_signal_ends_the_app_with_a_dialog_open(
    launch: Launch, screen: Screen, state: str, how: signal.Signals
) -> None:
    app = launch()
    window = app.window()
    app.gateway_url()
    screen.focus(window)
    title = OPENERS[state](screen)
    screen.window_named(title)
    taken = app.stop(how)
    assert taken < EXIT_BUDGET_S
    assert "The gateway has stopped (the application is quitting)." in app.log()
