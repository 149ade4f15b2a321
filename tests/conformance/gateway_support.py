"""A real ``GatewayRunner`` in front of the real Kyutai server, for the conformance tier."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.server import GatewayRunner
from tests.conformance.kyutai_env import KyutaiServer

ADMIN_SECRET = "conformance-admin-secret-0123456789"
# The Kyutai server ignores the query; the gateway checks the voice against this list.
VOICE = "NATF2"
PERSONA = "You are a calm assistant who answers briefly."


def gateway_settings(backend_url: str, **changes: Any) -> Settings:
    base = Settings(
        host="127.0.0.1",
        port=0,
        backends=(BackendConfig(backend_url, voices=(VOICE,), name="kyutai"),),
        default_voice=VOICE,
        # The tests drive the model as fast as it answers, as the offline engine does; pacing to
        # real time is the gateway tier's business (tests/gateway), not the real server's.
        realtime_tolerance_s=60.0,
        handshake_timeout_s=20.0,
    )
    return base.replace(**changes)


@dataclass
class KyutaiGateway:
    runner: GatewayRunner
    store: KeyStore
    http: aiohttp.ClientSession
    server: KyutaiServer

    @property
    def url(self) -> str:
        assert self.runner.address is not None
        return self.runner.address.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    @property
    def ctx(self) -> GatewayContext:
        assert self.runner.ctx is not None
        return self.runner.ctx

    def new_key(self, name: str = "conformance") -> str:
        return self.store.create(name).key

    async def admin(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"X-Admin-Secret": ADMIN_SECRET}
        return await self.http.request(method, self.url + path, headers=headers, **kwargs)

    async def wait_sessions(self, predicate: Callable[[Any], bool], limit_s: float = 20) -> None:
        """Wait, event-driven, until the gateway's session registry satisfies ``predicate``."""
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


GatewayFactory = Callable[..., Awaitable[KyutaiGateway]]


async def start_gateway(
    server: KyutaiServer, folder: Path, backend_url: str | None = None, **changes: Any
) -> KyutaiGateway:
    store = KeyStore(folder / "gateway.sqlite3")
    store.set_admin_secret(ADMIN_SECRET)
    runner = GatewayRunner(gateway_settings(backend_url or server.url, **changes), store)
    await runner.start()
    return KyutaiGateway(runner, store, aiohttp.ClientSession(), server)


async def stop_gateway(gw: KyutaiGateway) -> None:
    await gw.http.close()
    await gw.runner.stop()
    gw.store.close()
