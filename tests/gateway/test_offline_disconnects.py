"""Clients that vanish mid-upload leave nothing behind and no error in the log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pplex_desktop.gateway.events import RequestServed
from tests.gateway.conftest import GatewayFactory


@pytest.mark.parametrize("route", ["/v1/inference", "/v1/jobs"])
async def test_an_upload_cut_short_leaves_nothing(make_gateway: GatewayFactory, route: str) -> None:
    gw = await make_gateway()
    served: asyncio.Future[RequestServed] = asyncio.get_running_loop().create_future()

    def on_event(event: Any) -> None:
        if isinstance(event, RequestServed) and event.path == route and not served.done():
            served.set_result(event)

    gw.ctx.events.subscribe(on_event)
    address = gw.runner.address
    assert address is not None
    _reader, writer = await asyncio.open_connection(address.host, address.port)
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {gw.new_key()}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n\r\n"
        "--b\r\nContent-Disposition: form-data; name=audio; filename=a.wav\r\n\r\n"
    )
    writer.write(head.encode() + b"\0" * 300_000)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    event = await asyncio.wait_for(served, 10)
    assert event.status == 499
    assert list((gw.ctx.keystore.db.path.parent / "jobs").iterdir()) == []
    gw.ctx.events.unsubscribe(on_event)
