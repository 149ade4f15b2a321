from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pplex_desktop.sim.sim import SimConfig, SimServer

SimFactory = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    servers: list[SimServer] = []

    async def factory(**config: Any) -> SimServer:
        server = SimServer(SimConfig(**config))
        await server.start("127.0.0.1", 0)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()
