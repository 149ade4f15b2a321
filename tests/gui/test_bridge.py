"""The bridge never blocks the Qt thread, delivers outcomes there, and never loses a failure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.gateway.events import EventHub, KeysChanged, RequestServed
from pplex_desktop.ui.bridge import BridgeClosedError, GatewayBridge, IoBridge
from tests.gui.conftest import WAIT_MS, Launch, url_of


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread("test-loop")
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def bridge(loop_thread: LoopThread) -> Iterator[GatewayBridge]:
    made = GatewayBridge(loop_thread, EventHub())
    yield made
    made.close()
    made.deleteLater()


def test_the_ui_keeps_running_while_a_slow_operation_is_held(qtbot: QtBot, launch: Launch) -> None:
    shell = launch()
    release: asyncio.Event | None = None
    entered = threading.Event()

    async def slow_admin_operation() -> str:
        nonlocal release
        release = asyncio.Event()
        entered.set()
        await release.wait()
        return "done"

    results: list[str] = []
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    shell.bridge.call(slow_admin_operation(), results.append)
    assert entered.wait(5)
    # While the operation is held on the gateway thread, the Qt thread keeps turning...
    qtbot.waitUntil(lambda: ticks >= 20, timeout=WAIT_MS)
    # ...and so does the gateway: it still answers requests from other threads.
    from tests.gui.conftest import http

    assert http(url_of(shell) + "/healthz")[0] == 200
    assert results == []
    assert release is not None
    shell.services.server.thread.call_soon(release.set)
    qtbot.waitUntil(lambda: results == ["done"], timeout=WAIT_MS)
    timer.stop()


def test_outcomes_arrive_on_the_qt_thread_and_never_inside_call(
    qtbot: QtBot, bridge: GatewayBridge
) -> None:
    seen: list[tuple[str, bool]] = []

    def where() -> str:
        return threading.current_thread().name

    def got(name: str) -> None:
        seen.append((name, threading.current_thread() is threading.main_thread()))

    bridge.call_fn(where, on_done=got)
    assert seen == []  # never delivered synchronously
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=WAIT_MS)
    assert seen == [("test-loop", True)]
    assert bridge.pending == 0


def test_a_failure_goes_to_on_error_or_to_the_failed_signal(
    qtbot: QtBot, bridge: GatewayBridge
) -> None:
    def refuse() -> None:
        raise ValidationError("That is not allowed.")

    errors: list[BaseException] = []
    bridge.call_fn(refuse, on_done=lambda _: None, on_error=errors.append)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=WAIT_MS)
    assert str(errors[0]) == "That is not allowed."

    with qtbot.waitSignal(bridge.failed, timeout=WAIT_MS) as blocker:
        bridge.call_fn(refuse, what="refusing")
    assert blocker.args is not None
    assert blocker.args[0] == "refusing"
    assert isinstance(blocker.args[1], ValidationError)


def test_events_from_the_loop_become_signals(qtbot: QtBot, loop_thread: LoopThread) -> None:
    hub = EventHub()
    bridge = GatewayBridge(loop_thread, hub)
    served = RequestServed(1.0, "GET", "/v1/info", 200, 1.5, "127.0.0.1", 1, "k", "http")
    got: list[object] = []
    bridge.request_served.connect(got.append)
    with qtbot.waitSignal(bridge.keys_changed, timeout=WAIT_MS):
        loop_thread.call_soon(hub.emit, served)
        loop_thread.call_soon(hub.emit, KeysChanged())
    assert got == [served]
    bridge.close()
    loop_thread.run(asyncio.sleep(0))
    assert hub._listeners == []
    bridge.deleteLater()


def test_a_closed_bridge_refuses_work(bridge: GatewayBridge) -> None:
    bridge.close()

    async def never() -> None:
        raise AssertionError("must not run")

    future = bridge.call(never())
    with pytest.raises(BridgeClosedError):
        future.result(1)


def test_a_result_for_a_deleted_widget_is_dropped(qtbot: QtBot, bridge: GatewayBridge) -> None:
    """A dialog saved and closed while its list was still loading: the late result must not
    reach the deleted widget (it raised "Internal C++ object already deleted" in a handler)."""
    from PySide6.QtWidgets import QListWidget

    class Page(QListWidget):
        def show_items(self, items: list[str]) -> None:
            self.clear()
            self.addItems(items)

    page = Page()
    release = threading.Event()
    delivered = threading.Event()

    async def slow_listing() -> list[str]:
        await asyncio.to_thread(release.wait, 5)
        return ["a", "b"]

    future = bridge.call(slow_listing(), page.show_items)
    future.add_done_callback(lambda _f: delivered.set())
    page.deleteLater()
    qtbot.waitUntil(lambda: not _valid(page), timeout=WAIT_MS)
    release.set()
    assert delivered.wait(5)
    qtbot.wait(50)  # the outcome's queued delivery runs; no error may be logged


def _valid(obj: object) -> bool:
    import shiboken6

    return bool(shiboken6.isValid(obj))


def test_quitting_skips_queued_reads_but_not_saves(loop_thread: LoopThread) -> None:
    """Behind a slow disk job at exit, a refresh nobody will see is skipped; a save is not."""
    io = IoBridge(loop_thread)
    held, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        held.set()
        assert release.wait(5)

    io.call_fn(slow)
    assert held.wait(5)
    read = io.call_fn(lambda: ran.append("read"), read_only=True)
    save = io.call_fn(lambda: ran.append("save"))
    io.close()
    release.set()
    io.finish()
    assert ran == ["save"]
    with pytest.raises(BridgeClosedError):
        read.result(0)
    assert save.result(0) is None
    io.deleteLater()


def test_a_read_runs_while_the_app_is_not_quitting(loop_thread: LoopThread) -> None:
    io = IoBridge(loop_thread)
    assert io.call_fn(lambda: "keys", read_only=True).result(5) == "keys"
    io.close()
    io.finish()
    io.deleteLater()


def test_the_loop_bridge_skips_a_read_queued_before_quitting(loop_thread: LoopThread) -> None:
    bridge = GatewayBridge(loop_thread, EventHub())
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # holds the loop itself, for the few milliseconds until close()
        held.set()
        assert release.wait(5)

    bridge.call_fn(hold)
    assert held.wait(5)
    read = bridge.call_fn(lambda: "voices", read_only=True)
    save = bridge.call_fn(lambda: "saved")
    bridge.close()
    release.set()
    assert save.result(5) == "saved"
    with pytest.raises(BridgeClosedError):
        read.result(5)
    bridge.deleteLater()
