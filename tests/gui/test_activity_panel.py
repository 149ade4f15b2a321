"""The activity page: requests with key names (never keys), a filter, and the app's log with
its level."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from pplex_desktop.ui.activity.activity_model import COLUMNS
from pplex_desktop.ui.activity.activity_panel import ActivityPanel
from tests.gui.conftest import WAIT_MS, Launch, http, url_of


def activity_page(shell: object) -> ActivityPanel:
    page = shell.window.show_page("activity")  # type: ignore[attr-defined]
    assert isinstance(page, ActivityPanel)
    return page


def cells(panel: ActivityPanel) -> list[list[str]]:
    proxy = panel.proxy
    return [
        [proxy.index(row, column).data() for column in range(len(COLUMNS))]
        for row in range(proxy.rowCount())
    ]


def test_requests_appear_newest_first_without_keys(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    key = shell.services.keystore.create("garden speaker").key
    http(url_of(shell) + "/healthz")  # before the page reads the history
    panel = activity_page(shell)
    qtbot.waitUntil(lambda: panel.history_loaded, timeout=WAIT_MS)
    assert http(url_of(shell) + f"/v1/info?api_key={key}")[0] == 200
    assert http(url_of(shell) + "/v1/info", key="pplx_" + "x" * 46)[0] == 401
    qtbot.waitUntil(lambda: len(cells(panel)) == 3, timeout=WAIT_MS)
    rows = cells(panel)
    newest, middle, oldest = rows
    assert newest[3] == "GET /v1/info" and newest[4] == "401"
    assert middle[1] == "garden speaker" and middle[4] == "200"
    assert middle[3] == "GET /v1/info?api_key=REDACTED"
    assert oldest[3] == "GET /healthz" and oldest[1] == "—"
    assert middle[2] == "127.0.0.1"
    assert all(key not in cell for row in rows for cell in row)

    panel.filter_edit.setText("garden")
    assert [r[1] for r in cells(panel)] == ["garden speaker"]
    panel.filter_edit.setText("401")
    assert [r[4] for r in cells(panel)] == ["401"]


def test_the_log_view_and_its_level(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    panel = activity_page(shell)
    # The gateway's own start-up lines are there.
    assert "The gateway listens on" in panel.log_view.toPlainText()
    log = logging.getLogger("pplex_desktop.test")
    log.info("A line the activity page shows, with pplx_%s hidden.", "a" * 46)
    qtbot.waitUntil(lambda: "activity page shows" in panel.log_view.toPlainText(), timeout=WAIT_MS)
    assert "a" * 46 not in panel.log_view.toPlainText()
    assert "pplx_REDACTED" in panel.log_view.toPlainText()

    panel.level_combo.setCurrentText("WARNING")
    assert logging.getLogger("pplex_desktop").level == logging.WARNING
    log.info("An info line that must not appear.")
    log.warning("A warning line that must appear.")
    qtbot.waitUntil(lambda: "must appear" in panel.log_view.toPlainText(), timeout=WAIT_MS)
    assert "must not appear" not in panel.log_view.toPlainText()
    panel.level_combo.setCurrentText("INFO")
    assert shell.window.statusBar().currentMessage().startswith("The log now shows INFO")
    qtbot.mouseClick(panel.filter_edit, Qt.MouseButton.LeftButton)


def test_a_burst_of_log_lines_arrives_as_one_batch(qtbot: QtBot) -> None:
    import logging

    from pplex_desktop.ui.activity.log_handler import QtLogHandler

    handler = QtLogHandler()
    batches: list[int] = []
    handler.carrier.lines.connect(lambda lines: batches.append(len(lines)))
    log = logging.getLogger("pplex_desktop.test.burst")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for i in range(200):
            log.info("Request %d answered.", i)
        qtbot.waitUntil(lambda: sum(batches) == 200, timeout=5_000)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert batches == [200], "one wake-up for the whole burst"


def test_a_request_with_a_revoked_key_is_listed_under_its_name(
    qtbot: QtBot, launch: Launch
) -> None:
    shell = launch()
    store = shell.services.keystore
    revoked = store.create("old laptop")
    store.revoke(revoked.record.id)
    panel = activity_page(shell)
    qtbot.waitUntil(lambda: panel.history_loaded, timeout=WAIT_MS)
    status, body = http(url_of(shell) + "/v1/info", key=revoked.key)
    assert (status, body["error"]["code"]) == (401, "revoked_api_key")
    qtbot.waitUntil(lambda: len(cells(panel)) == 1, timeout=WAIT_MS)
    (row,) = cells(panel)
    assert (row[1], row[4]) == ("old laptop", "401")
    served = panel.model.request_at(0)
    assert (served.key_id, served.key_name) == (revoked.record.id, "old laptop")
    # The record carries the name: a key deleted since is still named in the list.
    store.delete(revoked.record.id)
    assert cells(panel)[0][1] == "old laptop"
    assert all(revoked.key not in cell for cell in row)
