"""Journey 6: a key made on the Keys page works for a real client until it is revoked there."""

from __future__ import annotations

from tests.journeys.conftest import Launch
from tests.journeys.harness import Screen, differs, wait_until
from tests.journeys.http import request

NEW_KEY = "^New API key$"
# The first row of the keys table, from the window's top-left corner (found on a screenshot).
FIRST_ROW = (400, 150)
ROW_BAND = (210, 137, 800, 18)  # that row's cells, empty while the table is


def test_a_key_made_in_the_gui_works_until_revoked_there(launch: Launch, screen: Screen) -> None:
    app = launch()
    window = app.window()
    url = app.gateway_url()
    screen.focus(window)
    x, y, w, h = screen.geometry(window)
    screen.key("ctrl+4")
    before = screen.shot("keys-empty")

    screen.key("alt+n")
    form = screen.window_named(NEW_KEY)
    screen.focus(form)
    screen.type("journey tablet")
    screen.key("Return")
    shown = wait_until(
        lambda: next((w for w in screen.windows(NEW_KEY) if w != form), None),
        "the dialog that shows the new key",
    )
    screen.focus(shown)
    screen.shot("new-key", region=screen.geometry(shown))
    screen.key("alt+c")

    def pasted() -> str | None:
        text = screen.clipboard()
        return text if text.startswith("pplx_") else None

    key = wait_until(pasted, "the new key on the clipboard")
    screen.key("Escape")
    status, body = request(url + "/v1/info", headers={"X-API-Key": key})
    assert status == 200, body

    screen.focus(window)
    # The table reloads on the app's I/O thread; click the row only once it is drawn.
    row = (x + ROW_BAND[0], y + ROW_BAND[1], *ROW_BAND[2:])
    wait_until(lambda: differs(before, screen.grab(), row) or None, "the new key in the table")
    screen.click(x + FIRST_ROW[0], y + FIRST_ROW[1])
    screen.key("alt+r")
    box = screen.window_named("^Revoke key$")
    screen.focus(box)
    screen.key("alt+r")

    def refused() -> dict[str, object] | None:
        status, body = request(url + "/v1/info", headers={"X-API-Key": key})
        return body if status == 401 else None

    body = wait_until(refused, "the revoked key to be refused")
    assert body["error"]["code"] == "revoked_api_key", body  # type: ignore[index]
    screen.focus(window)
    revoked = screen.shot("keys", region=(x, y, w, h))  # the key, now revoked
    screen.key("ctrl+5")  # Activity: the requests just made, the refused one too
    screen.repaints(revoked, "the Activity page")
    screen.shot("activity", region=(x, y, w, h))
