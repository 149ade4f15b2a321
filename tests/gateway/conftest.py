"""A real gateway on a real port, in front of a real pplex-sim, with a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.server import GatewayRunner
from pplex_desktop.sim.sim import SimConfig, SimServer
from tests.running_gateway import RunningGateway

ADMIN_SECRET = "test-admin-secret-0123456789"


@dataclass
class Gateway(RunningGateway):
    clock: FakeClock
    sims: list[SimServer]

    admin_secret: ClassVar[str] = ADMIN_SECRET

    async def sessions_done(self) -> None:
        """Wait until every live session has been torn down and accounted."""
        await asyncio.wait_for(self.ctx.sessions.wait_empty(), 10)


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    made: list[Gateway] = []

    async def factory(
        *,
        sims: int = 1,
        sim_config: SimConfig | None = None,
        voice_dir: str | None = None,
        **settings: Any,
    ) -> Gateway:
        servers = []
        for _ in range(sims):
            server = SimServer(sim_config or SimConfig())
            await server.start("127.0.0.1", 0)
            servers.append(server)
        clock = FakeClock()
        store = KeyStore(tmp_path / f"gw{len(made)}.sqlite3", clock=clock)
        store.set_admin_secret(ADMIN_SECRET)
        base = Settings(
            host="127.0.0.1",
            port=0,
            backends=tuple(BackendConfig(s.url or "", voice_dir=voice_dir) for s in servers)
            or (BackendConfig("ws://127.0.0.1:9"),),
        )
        runner = GatewayRunner(base.replace(**settings), store, clock=clock)
        await runner.start()
        gw = Gateway(runner, store, aiohttp.ClientSession(), clock, servers)
        made.append(gw)
        return gw

    yield factory
    for gw in made:
        await gw.http.close()
        await gw.runner.stop()
        for server in gw.sims:
            await server.stop()
        gw.store.close()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway()
