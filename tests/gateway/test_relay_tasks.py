"""The relay's own tasks: a cancelled caller is cancelled, and the model server still goes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from pplex_desktop.core.settings import BackendConfig
from tests.gateway.conftest import GatewayFactory


@dataclass
class DeafBackend:
    """A model server that takes the session and then never answers the gateway's close."""

    url: str = ""
    got_close: asyncio.Event = field(default_factory=asyncio.Event)
    let_go: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def deaf_backend() -> AsyncIterator[DeafBackend]:
    backend = DeafBackend()

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def chat(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        await ws.send_bytes(b"\x00")
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.CLOSE:
                backend.got_close.set()
                await backend.let_go.wait()
                return ws
            if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                return ws

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_get("/api/chat", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    backend.url = f"http://127.0.0.1:{port}"
    yield backend
    backend.let_go.set()
    await runner.cleanup()


def _task_in(qualname: str) -> asyncio.Task[Any]:
    """The task whose chain of awaits runs through the coroutine ``qualname`` right now."""
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        while coro is not None:
            if getattr(coro, "__qualname__", "") == qualname:
                return task
            coro = getattr(coro, "cr_await", None)
    raise AssertionError(f"no task is in {qualname}")


async def test_a_relay_cancelled_while_it_finishes_is_cancelled_and_frees_its_backend(
    make_gateway: GatewayFactory, deaf_backend: DeafBackend
) -> None:
    gw = await make_gateway(sims=0, backends=(BackendConfig(deaf_backend.url),))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{gw.ws_url}/api/chat?api_key={gw.new_key()}")
        await gw.wait_sessions(lambda r: r.live_count == 1)
        await ws.close()
    # The relay now waits (up to its grace) for the model server to answer its close.
    await asyncio.wait_for(deaf_backend.got_close.wait(), 5)
    handler = _task_in("Relay._finish")
    began = asyncio.get_running_loop().time()
    handler.cancel()
    await asyncio.wait([handler], timeout=5)
    assert handler.cancelled()
    assert asyncio.get_running_loop().time() - began < 1.5  # well before the 2 s close grace
    await gw.sessions_done()
    assert [b.busy for b in gw.ctx.backends.backends] == [False]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("pump-down-")]
