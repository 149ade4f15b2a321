"""A real gateway on a real port, in front of a real pplex-sim, with a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.server import GatewayRunner
from pplex_desktop.sim.sim import SimConfig, SimServer

ADMIN_SECRET = "test-admin-secret-0123456789"


@dataclass
class Gateway:
    runner: GatewayRunner
    store: KeyStore
    clock: FakeClock
    http: aiohttp.ClientSession
    sims: list[SimServer]

    @property
    def url(self) -> str:
        assert self.runner.address is not None
        return self.runner.address.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    @property
    def ctx(self) -> Any:
        assert self.runner.ctx is not None
        return self.runner.ctx

    async def sessions_done(self) -> None:
        """Wait until every live session has been torn down and accounted."""
        await asyncio.wait_for(self.ctx.sessions.wait_empty(), 10)

    async def wait_sessions(self, predicate: Callable[[Any], bool], limit_s: float = 10) -> None:
        """Wait, event-driven, until the session registry satisfies ``predicate``."""
        registry = self.ctx.sessions
        changed = asyncio.Event()
        registry.add_listener(changed.set)
        try:
            async with asyncio.timeout(limit_s):
                while not predicate(registry):
                    await changed.wait()
                    changed.clear()
        finally:
            registry.remove_listener(changed.set)

    def new_key(self, name: str = "test", **kwargs: Any) -> str:
        return self.store.create(name, **kwargs).key

    async def admin(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"X-Admin-Secret": ADMIN_SECRET, **kwargs.pop("headers", {})}
        return await self.http.request(method, self.url + path, headers=headers, **kwargs)


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
        gw = Gateway(runner, store, clock, aiohttp.ClientSession(), servers)
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
