"""Journey 8: quit from the menu, start again on the same folder: no welcome, and the admin
secret, a key, a recording and the Talk page's choices are all still there."""

from __future__ import annotations

import time

from tests.journeys.conftest import Launch
from tests.journeys.harness import EXIT_BUDGET_S, Screen, changed_share, differs, wait_until
from tests.journeys.http import request
from tests.journeys.talking import connect, live_sessions
from tests.journeys.test_first_launch import WELCOME, copied_secret

# The middle of the Talk page's left column (the Talking box), from the window's corner.
TALKING = (190, 380, 420, 200)


def test_everything_is_still_there_after_quitting_from_the_menu(
    launch: Launch, screen: Screen
) -> None:
    first = launch(admin_secret=None)
    secret = copied_secret(first, screen, "welcome-again")
    screen.key("alt+d")
    url = first.gateway_url()
    status, made = request(
        url + "/admin/keys/generate",
        method="POST",
        headers={"X-Admin-Secret": secret, "Content-Type": "application/x-www-form-urlencoded"},
        data=b"name=kept",
    )
    assert status in (200, 201), made
    key = made["key"]

    window = first.window()
    screen.focus(window)
    screen.key("ctrl+2")
    plain = screen.shot("talk-before")
    screen.key("alt+t", "alt+r")  # Hold to talk; Record this conversation
    x, y, _w, _h = screen.geometry(window)
    chosen = screen.repaints(plain, "choosing Hold to talk and recording")
    assert differs(plain, chosen, (x + TALKING[0], y + TALKING[1], *TALKING[2:]))
    connect(screen, window)  # a short recorded call
    wait_until(lambda: live_sessions(url, secret) or None, "the recorded call")
    time.sleep(1.0)  # a second of conversation to record; nothing to await from outside
    screen.key("alt+u")
    recordings = first.data_dir / "recordings"
    wait_until(lambda: list(recordings.glob("*.wav")) or None, "the recording on disk")
    names = sorted(p.name for p in recordings.iterdir())

    begin = time.monotonic()
    screen.key("alt+f", "q")  # File ▸ Quit
    assert first.stop(how=None) < EXIT_BUDGET_S
    assert time.monotonic() - begin < EXIT_BUDGET_S + 1

    again = launch(admin_secret=None, data_dir=first.data_dir)
    url = again.gateway_url()  # starts on its own: no welcome waits for a choice
    assert not screen.windows(WELCOME)
    assert request(url + "/v1/info", headers={"X-API-Key": key})[0] == 200
    assert request(url + "/admin/keys", headers={"X-Admin-Secret": secret})[0] == 200
    assert sorted(p.name for p in recordings.iterdir()) == names
    window = again.window()
    screen.focus(window)
    screen.key("ctrl+2")
    x, y, _w, _h = screen.geometry(window)
    talking = (x + TALKING[0], y + TALKING[1], *TALKING[2:])
    restored = screen.shot("talk-after")
    # Choosing Hold to talk again changes nothing but the focus frame: it was chosen already.
    screen.key("alt+t")
    time.sleep(0.5)  # a repaint would have happened by now; there is none to wait for
    assert changed_share(restored, screen.grab(), talking) < 0.02, "Hold to talk was forgotten"
    screen.key("alt+m")  # while Open mic is a visible change: the check can see one
    screen.repaints(restored, "choosing Open mic")
    connect(screen, window)  # the record switch was kept: this call is recorded too
    wait_until(lambda: live_sessions(url, secret) or None, "a second call")
    time.sleep(1.0)
    screen.key("alt+u")
    wait_until(lambda: len(list(recordings.glob("*.wav"))) == 2 or None, "a second recording")
