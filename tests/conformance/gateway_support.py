"""A real ``GatewayRunner`` in front of the real Kyutai server, for the conformance tier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.server import GatewayRunner
from tests.conformance.kyutai_env import KyutaiServer
from tests.running_gateway import RunningGateway

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
class KyutaiGateway(RunningGateway):
    server: KyutaiServer

    admin_secret: ClassVar[str] = ADMIN_SECRET
    key_name: ClassVar[str] = "conformance"
    sessions_limit_s: ClassVar[float] = 20.0  # a real model on a CPU


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
