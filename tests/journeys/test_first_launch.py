"""Journey 1: the welcome shows the admin secret once, and a welcome that was quit comes back."""

from __future__ import annotations

import signal

from tests.journeys.conftest import Launch
from tests.journeys.harness import App, Screen, is_blank, wait_until
from tests.journeys.http import admin, request

WELCOME = "^Welcome to pplex-desktop$"


def copied_secret(app: App, screen: Screen, shot: str) -> str:
    """The secret as a person gets it: the welcome's Copy button (Alt+C), then paste."""
    app.window()
    welcome = screen.window_named(WELCOME)
    screen.focus(welcome)
    pixels = screen.shot(shot, region=screen.geometry(welcome))
    assert not is_blank(pixels, screen.geometry(welcome))
    screen.key("alt+c")

    def pasted() -> str | None:
        text = screen.clipboard()
        return text if text.startswith("pplxadmin_") else None

    return wait_until(pasted, "the admin secret on the clipboard")


def test_a_welcome_quit_halfway_comes_back_with_a_secret_that_works(
    launch: Launch, screen: Screen
) -> None:
    first = launch(admin_secret=None)
    lost = copied_secret(first, screen, "welcome-first")
    assert first.stop(signal.SIGTERM) < 5.0  # the welcome open is no reason to hang
    assert "The gateway listens on" not in first.log()  # nothing was chosen, nothing started

    again = launch(admin_secret=None, data_dir=first.data_dir)
    secret = copied_secret(again, screen, "welcome")
    assert secret != lost
    screen.key("alt+d")  # "Use the demo backend"
    url = again.gateway_url()
    status, health = request(url + "/healthz")
    assert status == 200 and health["status"] == "ok", health
    status, body = admin(url, secret)
    assert status == 200, body
    assert admin(url, lost)[0] == 401  # the secret of the quit welcome was replaced
    assert not screen.windows(WELCOME)
    again.stop(signal.SIGINT)

    third = launch(admin_secret=None, data_dir=first.data_dir)
    url = third.gateway_url()  # it starts on its own: the welcome was completed
    assert not screen.windows(WELCOME)
    assert admin(url, secret)[0] == 200
