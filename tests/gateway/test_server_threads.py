"""GatewayServer read from another thread (the Qt thread) while its own thread changes it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.server import GatewayServer, GatewayState, GatewayStatus

CYCLES = 12


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Threads take turns every few bytecodes: a torn read shows up within a few cycles."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _whole(status: GatewayStatus) -> bool:
    """One moment of the gateway: an address exactly while it runs, and its LAN parts with it."""
    if status.state is GatewayState.RUNNING:
        return status.address is not None
    return status.address is None and status.lan_address is None and status.tls is None


@pytest.mark.usefixtures("tiny_switch_interval")
def test_another_thread_sees_whole_states_while_the_gateway_starts_and_stops(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path / "keys.sqlite3")
    first = Settings(host="127.0.0.1", port=0, backends=(BackendConfig("ws://127.0.0.1:9"),))
    server = GatewayServer(first, store)
    done = threading.Event()
    torn: list[GatewayStatus] = []
    states: set[GatewayState] = set()
    reads = 0

    def read() -> None:
        nonlocal reads
        while not done.is_set():
            status = server.status
            states.add(status.state)
            reads += 1
            if not _whole(status):
                torn.append(status)
            assert server.settings.port == 0  # a whole Settings, old or new

    reader = threading.Thread(target=read, name="qt-like-reader")
    reader.start()
    try:
        for cycle in range(CYCLES):
            server.reconfigure(first.replace(default_rpm=10 + cycle))
            address = server.start(timeout=30)
            assert server.address == address
            server.stop(timeout=30)
    finally:
        done.set()
        reader.join(10)
        server.shutdown()
        store.close()
    assert not reader.is_alive()
    assert torn == []
    assert reads > CYCLES
    assert {GatewayState.RUNNING, GatewayState.STOPPED} <= states
    assert server.status == GatewayStatus(GatewayState.STOPPED)
    assert server.settings.default_rpm == 10 + CYCLES - 1
