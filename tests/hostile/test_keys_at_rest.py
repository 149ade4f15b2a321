"""Legacy keys at rest, and guessing keys from one address.

``--import-keys`` used to store a legacy key's first eleven characters as its display prefix:
all of ``abc123``, most of any short key. And nothing limited how many unknown keys one
address could try.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import aiohttp

from pplex_desktop.core import keys
from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.context import KEY_FAILURES_PER_MINUTE
from pplex_desktop.gateway.server import GatewayRunner
from tests.hostile.store_support import gateway_command, lan_url, run_to_exit, start_gateway

SHORT = "abc123"
LONG = "L3gacyKey-0f9e8d7c6b5a49382716"
LEGACY_FILE = {SHORT: {"name": "old kiosk"}, LONG: {"name": "old server", "rpm": 100}}


def _stored_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data.glob("pplex.sqlite3*")))


async def test_imported_legacy_keys_leave_no_trace_and_short_ones_are_flagged(
    tmp_path: Path,
) -> None:
    source = tmp_path / "api_keys.json"
    source.write_text(json.dumps(LEGACY_FILE))
    data = tmp_path / "data"
    done = await run_to_exit(gateway_command(data, "--import-keys", str(source)))
    assert done.code == 0, done.stderr
    assert "Imported 2 keys" in done.stdout
    notice = "Warning: 1 imported legacy key(s) are short or easy to guess ('old kiosk')."
    assert notice in done.stdout
    assert notice in done.stderr, "the warning is logged as well"
    assert SHORT not in done.stdout + done.stderr
    at_rest = _stored_bytes(data)
    for secret in (SHORT, LONG):
        assert secret[:6].encode() not in at_rest
    store = KeyStore.in_folder(data)
    try:
        prefixes = {k.name: k.prefix for k in store.list_keys()}
    finally:
        store.close()
    assert all(p.startswith("legacy-") and len(p) == 11 for p in prefixes.values()), prefixes

    running = await start_gateway(data)
    try:
        async with aiohttp.ClientSession() as http:
            for secret in (SHORT, LONG):
                async with http.get(running.url + "/v1/info", headers={"X-API-Key": secret}) as r:
                    assert r.status == 200, "imported keys keep working"
    finally:
        assert await running.stop() == 0


async def test_prefixes_stored_by_earlier_imports_are_replaced(tmp_path: Path) -> None:
    store = KeyStore.in_folder(tmp_path)
    store.close()
    conn = sqlite3.connect(tmp_path / "pplex.sqlite3", isolation_level=None)
    conn.execute(
        "INSERT INTO api_keys (name, prefix, digest, kind, created_at, rpm, max_sessions)"
        " VALUES ('old kiosk', ?, ?, 'legacy', 0, 60, 1)",
        (SHORT, keys.digest(SHORT)),
    )
    # As the version before the prefix fix left it: schema 1, without later columns.
    conn.execute("ALTER TABLE api_keys DROP COLUMN can_manage_voices")
    conn.execute("UPDATE schema_version SET version = 1")
    conn.close()
    running = await start_gateway(tmp_path)
    assert await running.stop() == 0
    assert SHORT.encode() not in _stored_bytes(tmp_path)
    store = KeyStore.in_folder(tmp_path)
    try:
        assert store.authenticate(SHORT).prefix.startswith("legacy-")
    finally:
        store.close()


async def _status(http: aiohttp.ClientSession, url: str, key: str) -> tuple[int, dict[str, str]]:
    async with http.get(url + "/v1/info", headers={"X-API-Key": key}, ssl=False) as resp:
        body = await resp.json()
        return resp.status, {**resp.headers, "code": body.get("error", {}).get("code", "")}


async def test_guessing_keys_is_throttled_for_that_address_only(tmp_path: Path) -> None:
    source = tmp_path / "api_keys.json"
    source.write_text(json.dumps(LEGACY_FILE))
    store = KeyStore.in_folder(tmp_path)
    store.import_legacy_json(source)
    generated = store.create("new app").key
    store.close()
    # Plain HTTP on ::1 for the guesser, HTTPS on 127.0.0.1 for everyone else: two addresses.
    (tmp_path / "settings.json").write_text(json.dumps({"host": "::1"}))
    tls = ("--tls", "auto", "--host", "127.0.0.1", "--lan-port", "0")
    running = await start_gateway(tmp_path, *tls, "--log-level", "INFO")
    other = await lan_url(running)
    guesser = running.url
    assert guesser.startswith("http://[::1]:") and other.startswith("https://127.0.0.1:")
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(KEY_FAILURES_PER_MINUTE):
                status, got = await _status(http, guesser, f"guess{i:04d}")
                assert (status, got["code"]) == (401, "unknown_api_key"), i
            status, got = await _status(http, guesser, "guess-one-more")
            assert (status, got["code"]) == (429, "key_throttled")
            assert 1 <= int(got["Retry-After"]) <= 60
            # Even the right legacy key waits: otherwise the one 200 among 429s is the answer.
            status, got = await _status(http, guesser, SHORT)
            assert (status, got["code"]) == (429, "key_throttled")
            # A generated key cannot be guessed, so this machine's own clients keep working.
            assert (await _status(http, guesser, generated))[0] == 200
            # Everyone else is unaffected.
            assert (await _status(http, other, SHORT))[0] == 200
            assert (await _status(http, other, generated))[0] == 200
            assert (await _status(http, other, "guess-elsewhere"))[0] == 401
    finally:
        assert await running.stop() == 0
    assert "GET /v1/info" in running.log, "the access log was not captured"
    for secret in (SHORT, LONG, generated, "guess0001"):
        assert secret not in running.log


async def test_a_throttled_address_recovers_within_a_minute(tmp_path: Path) -> None:
    clock = FakeClock()
    store = KeyStore(tmp_path / "keys.sqlite3", clock=clock)
    source = tmp_path / "api_keys.json"
    source.write_text(json.dumps(LEGACY_FILE))
    store.import_legacy_json(source)
    settings = Settings(port=0, backends=(BackendConfig("ws://127.0.0.1:9"),))
    runner = GatewayRunner(settings, store, clock=clock)
    address = await runner.start()
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(KEY_FAILURES_PER_MINUTE):
                assert (await _status(http, address.url, f"typo{i}"))[0] == 401
            async with http.get(address.url + "/v1/info", params={"api_key": SHORT}) as resp:
                assert resp.status == 429
                wait = float(resp.headers["Retry-After"])
                message = (await resp.json())["error"]["message"]
            assert message.startswith(
                f"Too many unknown API keys from this address ({KEY_FAILURES_PER_MINUTE} a "
                "minute at most); wait "
            )
            clock.advance(wait - 1)
            assert (await _status(http, address.url, SHORT))[0] == 429
            clock.advance(1)
            assert (await _status(http, address.url, SHORT))[0] == 200
    finally:
        await runner.stop()
        store.close()
