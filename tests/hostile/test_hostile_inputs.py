"""Malformed input on every route: a 4xx with a sentence, never a 500, a hang or leaked internals."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from typing import Any

import aiohttp
import pytest

from tests.hostile.faults_support import (
    ADMIN_SECRET,
    Gateway,
    GatewayFactory,
    Witness,
    gateway,  # noqa: F401 (a fixture)
    make_gateway,  # noqa: F401 (a fixture)
    multipart,
    tiny_wav,
    witness,  # noqa: F401 (a fixture)
)

ADMIN = {"X-Admin-Secret": ADMIN_SECRET}
JSON = {"Content-Type": "application/json"}


def strict_json(text: str) -> Any:
    """Parse as a browser would: NaN and Infinity are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def _send(
    gw: Gateway, seen: Witness, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    # A connection per request: one malformed body must not decide what the next one meets.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.request(method, gw.url + path, **kwargs) as resp,
    ):
        text = await seen.read(resp)
        return resp.status, strict_json(text)


async def test_malformed_values_on_every_route_get_a_4xx_sentence(
    gateway: Gateway,  # noqa: F811
    witness: Witness,  # noqa: F811
) -> None:
    gw = gateway
    key = witness.secret(gw.new_key("sweep", rpm=10_000))
    user = {"X-API-Key": key}
    body, content_type = await multipart(tiny_wav())
    upload = {**user, "Content-Type": content_type}
    deep = "[" * 30_000
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        # (method, path, request arguments, expected status, expected code)
        ("POST", "/admin/keys/generate", {"data": '{"name": "\\ud800"}'}, 400, "invalid_text"),
        ("POST", "/admin/keys/generate", {"data": deep}, 400, "invalid_request"),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","rpm":' + "9" * 5000 + "}"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","rpm":"' + "9" * 5000 + '"}'},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","rpm":"\u00b2"}'},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","rpm":NaN}'},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","max_sessions":-3}'},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","expires_in_days":1e308}'},
            400,
            "invalid_expiry",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","expires_in_days":NaN}'},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"data": '{"name":"x","expires_at":1e308}'},
            400,
            "invalid_expiry",
        ),
        ("POST", "/admin/keys/generate", {"data": '{"name":["x"]}'}, 400, "invalid_name"),
        ("PATCH", "/admin/keys/1", {"data": '{"expires_in_days":1e308}'}, 400, "invalid_expiry"),
        ("PATCH", "/admin/keys/1", {"data": '{"name":"\\udfff tail"}'}, 400, "invalid_text"),
        ("GET", "/admin/keys/1180591620717411303424", {}, 400, "invalid_request"),
        ("GET", "/admin/keys/%C2%B2", {}, 400, "invalid_request"),
        ("GET", "/admin/keys/99999999999999999999999/usage", {}, 400, "invalid_request"),
        ("DELETE", "/admin/keys/1180591620717411303424", {}, 400, "invalid_request"),
        ("GET", "/v1/jobs?limit=%C2%B2", {"headers": user}, 400, "invalid_request"),
        ("GET", "/v1/jobs?offset=" + "9" * 40, {"headers": user}, 400, "invalid_request"),
        (
            "POST",
            "/v1/jobs?seed=" + "9" * 30,
            {"headers": upload, "data": body},
            400,
            "invalid_seed",
        ),
        ("POST", "/v1/jobs?seed=-1", {"headers": upload, "data": body}, 400, "invalid_seed"),
        (
            "POST",
            "/v1/jobs?silence_s=nan",
            {"headers": upload, "data": body},
            400,
            "invalid_silence",
        ),
        (
            "POST",
            "/v1/jobs",
            {"headers": {**upload, "Content-Encoding": "gzip"}, "data": body},
            400,
            "malformed_body",
        ),
        (
            "POST",
            "/admin/keys/generate",
            {"headers": {**ADMIN, **JSON, "Content-Encoding": "gzip"}, "data": b'{"name":"x"}'},
            400,
            "malformed_body",
        ),
    ]
    seen: list[tuple[str, int]] = []
    for method, path, given, status, code in cases:
        kwargs = given
        if path.startswith("/admin") and "headers" not in given:
            kwargs = {**given, "headers": {**ADMIN, **JSON}}
        got, answer = await _send(gw, witness, method, path, **kwargs)
        seen.append((path[:40], got))
        assert (got, answer["error"]["code"]) == (status, code), (method, path[:60], answer)
        assert answer["error"]["message"].endswith("."), answer
    # A real gzip body is decoded, not refused: the label is honoured when it is true.
    status, _answer = await _send(
        gw,
        witness,
        "POST",
        "/admin/keys/generate",
        headers={**ADMIN, **JSON, "Content-Encoding": "gzip"},
        data=gzip.compress(b'{"name": "zipped"}'),
    )
    assert status == 200
    assert len(seen) == len(cases)


async def test_no_answer_ever_holds_infinity(gateway: Gateway, witness: Witness) -> None:  # noqa: F811
    gw = gateway
    key = witness.secret(gw.new_key("reader"))
    # A row written before expiries were bounded (or by an old version) holds infinity.
    with gw.store.db.transaction() as conn:
        conn.execute("UPDATE api_keys SET expires_at = ?", (math.inf,))
    gw.store._changed()  # the test wrote behind the store's back
    for path, headers in (("/admin/keys", ADMIN), ("/v1/info", {"X-API-Key": key})):
        status, answer = await _send(gw, witness, "GET", path, headers=headers)
        assert status == 200, answer
    status, answer = await _send(gw, witness, "GET", "/v1/info", headers={"X-API-Key": key})
    assert answer["key"]["expires_at"] is None  # never expires, said in JSON
    assert answer["limits"]["max_prompt_encoded_bytes"] == 6144


async def _raw_exchange(gw: Gateway, request: bytes, wait_s: float) -> bytes:
    """Send ``request`` as is and read what comes back until the gateway closes or answers."""
    assert gw.runner.address is not None
    reader, writer = await asyncio.open_connection(gw.runner.address.host, gw.runner.address.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(wait_s):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            return head + await reader.readexactly(length)
    finally:
        writer.close()


async def test_a_body_shorter_than_its_content_length_gets_408(
    make_gateway: GatewayFactory,  # noqa: F811
    witness: Witness,  # noqa: F811
) -> None:
    gw = await make_gateway(upload_idle_timeout_s=0.5)
    key = witness.secret(gw.new_key("liar"))
    body, content_type = await multipart(tiny_wav())
    loop = asyncio.get_running_loop()
    for path, headers, payload in (
        ("/v1/jobs", f"X-API-Key: {key}\r\nContent-Type: {content_type}\r\n", body[:3000]),
        ("/v1/inference", f"X-API-Key: {key}\r\nContent-Type: {content_type}\r\n", body[:10]),
        (
            "/admin/keys/generate",
            f"X-Admin-Secret: {ADMIN_SECRET}\r\nContent-Type: application/json\r\n",
            b'{"name": "sl',
        ),
    ):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
            f"Content-Length: {len(body) + 50_000}\r\n\r\n"
        ).encode()
        started = loop.time()
        answer = await _raw_exchange(gw, head + payload, wait_s=5.0)
        took = loop.time() - started
        status = int(answer.split(b" ", 2)[1])
        text = answer.split(b"\r\n\r\n", 1)[1].decode()
        witness.bodies.append(text)
        witness.statuses.append(status)
        assert status == 408, (path, answer[:300])
        assert strict_json(text)["error"]["code"] == "body_timeout"
        assert 0.4 < took < 3.0, (path, took)
        assert b"connection: close" in answer.lower()


async def test_error_sentences_hold_no_paths_or_addresses(
    make_gateway: GatewayFactory,  # noqa: F811
    witness: Witness,  # noqa: F811
) -> None:
    gw = await make_gateway()
    key = witness.secret(gw.new_key("curious", rpm=10_000))
    data_folder = str(gw.ctx.keystore.db.path.parent)
    sim_url = gw.sims[0].url or ""
    sim_port = sim_url.rsplit(":", 1)[-1]
    answers: list[str] = []
    for name, data, status, code, words in (
        ("notes.wav", b"These are meeting notes, not audio.\n" * 40, 415, "not_audio", "not an"),
        ("empty.wav", b"", 422, "empty_file", "is empty"),
    ):
        body, content_type = await multipart(data, name)
        got, answer = await _send(
            gw,
            witness,
            "POST",
            "/v1/inference",
            headers={"X-API-Key": key, "Content-Type": content_type},
            data=body,
        )
        message = answer["error"]["message"]
        answers.append(message)
        assert (got, answer["error"]["code"]) == (status, code), answer
        assert words in message and ".." not in message and "Error opening" not in message
    got, info = await _send(gw, witness, "GET", "/v1/info", headers={"X-API-Key": key})
    answers.append(json.dumps(info))
    # The model server goes away after its health check passed: the caller is told it could
    # not be reached, not where it lives.
    await gw.sims[0].stop()
    async with gw.http.ws_connect(
        gw.ws_url + "/api/chat", params={"api_key": key, "voice_prompt": "NATF1"}
    ) as ws:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1014
        reason = str(msg.extra)
        answers.append(reason)
        assert "could not be reached (the connection was refused)" in reason
    for text in answers:
        assert data_folder not in text and "/tmp" not in text, text
        assert sim_url not in text and "127.0.0.1" not in text and sim_port not in text, text
    witness.bodies.extend(answers)


@pytest.mark.parametrize("field", ["X-API-Key", "X-Admin-Secret"])
async def test_undecodable_secrets_are_refused_not_crashed_on(
    gateway: Gateway,  # noqa: F811
    witness: Witness,  # noqa: F811
    field: str,
) -> None:
    gw = gateway
    # A legacy key makes the gateway hash malformed keys too instead of refusing them on sight.
    legacy = gw.ctx.keystore.db.path.parent / "legacy.json"
    legacy.write_text(json.dumps({"abc123-legacy-key": "old"}))
    gw.store.import_legacy_json(legacy)
    path = "/v1/info" if field == "X-API-Key" else "/admin/keys"
    status = await _raw_status(
        gw,
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + field.encode()
        + b": \xed\xa0\x80\xff\r\n\r\n",
    )
    assert status == 401


async def _raw_status(gw: Gateway, request: bytes) -> int:
    answer = await _raw_exchange(gw, request, wait_s=5.0)
    return int(answer.split(b" ", 2)[1])
