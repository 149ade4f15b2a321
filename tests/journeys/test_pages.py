"""Journey 2: every page opens and is drawn, from the keyboard (Ctrl+1… and Ctrl+,)."""

from __future__ import annotations

from tests.journeys.conftest import Launch
from tests.journeys.harness import Screen, differs, is_blank

PAGES = ("server", "talk", "offline", "keys", "activity")
SIDEBAR_W = 185  # the page list; the page itself is what lies right of it


def test_every_page_and_the_settings_open(launch: Launch, screen: Screen) -> None:
    app = launch()
    window = app.window()
    app.gateway_url()
    screen.focus(window)
    x, y, w, h = screen.geometry(window)
    page = (x + SIDEBAR_W, y + 30, w - SIDEBAR_W, h - 60)
    before = screen.shot("start")
    # From the last page back to the first: each key press must change what is drawn.
    for number in (5, 4, 3, 2, 1):
        name = PAGES[number - 1]
        screen.key(f"ctrl+{number}")
        screen.repaints(before, f"Ctrl+{number} ({name})")
        # Richer journeys draw the README's pictures of the other pages (keys, traffic, files).
        now = screen.shot(name if name == "server" else f"page-{name}", region=(x, y, w, h))
        assert differs(before, now, page), f"the {name} page looks like the one before it"
        assert not is_blank(now, page), f"the {name} page is blank"
        before = now

    screen.key("ctrl+comma")
    dialog = screen.window_named("^Settings$")
    region = screen.geometry(dialog)
    shown = screen.repaints(before, "Ctrl+, (Settings)")
    shown = screen.shot("settings", region=region)
    assert not is_blank(shown, region)
    screen.focus(dialog)
    screen.key("Escape")
    screen.repaints(shown, "closing the Settings")
    assert not screen.windows("^Settings$")
