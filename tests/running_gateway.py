"""A ``GatewayRunner`` serving on a real port, and what every tier's tests ask of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.live.sessions import SessionRegistry
from pplex_desktop.gateway.server import GatewayRunner


@dataclass
class RunningGateway:
    runner: GatewayRunner
    store: KeyStore
    http: aiohttp.ClientSession

    admin_secret: ClassVar[str] = ""  # what the tier's key store was given
    key_name: ClassVar[str] = "test"
    sessions_limit_s: ClassVar[float] = 10.0

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

    def new_key(self, name: str | None = None, **kwargs: Any) -> str:
        return self.store.create(name or self.key_name, **kwargs).key

    async def admin(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"X-Admin-Secret": self.admin_secret, **kwargs.pop("headers", {})}
        return await self.http.request(method, self.url + path, headers=headers, **kwargs)

    async def wait_sessions(
        self, predicate: Callable[[SessionRegistry], bool], limit_s: float | None = None
    ) -> None:
        """Wait, event-driven, until the gateway's session registry satisfies ``predicate``."""
        registry = self.ctx.sessions
        changed = asyncio.Event()
        registry.add_listener(changed.set)
        try:
            async with asyncio.timeout(limit_s or self.sessions_limit_s):
                while not predicate(registry):
                    await changed.wait()
                    changed.clear()
        finally:
            registry.remove_listener(changed.set)
