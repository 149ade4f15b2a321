"""Every setting from the command line and the environment, driven by the settings schema."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pplex_desktop.core.errors import ConfigError
from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.core.settings_schema import _DOCS, BY_NAME, SPECS, Kind, SettingSpec
from pplex_desktop.gateway.cli import build_parser, resolve_settings
from tests.gateway.conftest import GatewayFactory

TOKEN = "metrics-token-0123456789abcdef"
# Settings whose values are constrained: (raw, expected). Every other setting gets a sample
# from its kind, so a new setting is tested without anyone adding it here.
SPECIAL: dict[str, tuple[str, Any]] = {
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("8123", 8123),
    "lan_port": ("9443", 9443),
    "backends": ("ws://gpu-a:8998,http://gpu-b:9000", ("ws://gpu-a:8998", "ws://gpu-b:9000")),
    "default_voice": ("NATM1", "NATM1.pt"),
    "offline_engine": ("local", "local"),
    "close_action": ("quit", "quit"),
    "offline_silence_s": ("4.5", 4.5),
    "trusted_proxies": ("127.0.0.1,10.0.0.0/8", ("127.0.0.1/32", "10.0.0.0/8")),
    "public_hosts": ("gw.example.org,.lan.example.org", ("gw.example.org", ".lan.example.org")),
    "allowed_origins": (
        "https://web.example.org,http://localhost:5173",
        ("https://web.example.org", "http://localhost:5173"),
    ),
    "metrics_token": (TOKEN, TOKEN),
    "tls_cert": ("/etc/gw/cert.pem", "/etc/gw/cert.pem"),
    "tls_key": ("/etc/gw/key.pem", "/etc/gw/key.pem"),
}
# Settings that only make sense with another one set too.
COMPANIONS: dict[str, dict[str, str]] = {
    "offline_engine": {"personaplex_repo": "/opt/personaplex"},
    "tls_cert": {"tls_key": "/etc/gw/key.pem"},
    "tls_key": {"tls_cert": "/etc/gw/cert.pem"},
}


def _sample(spec: SettingSpec) -> tuple[str, Any]:
    if spec.name in SPECIAL:
        return SPECIAL[spec.name]
    if spec.kind is Kind.INT:
        return "7", 7
    if spec.kind is Kind.FLOAT:
        return "2.5", 2.5
    if spec.kind is Kind.BOOL:
        return ("false", False) if spec.default else ("true", True)
    if spec.kind is Kind.LIST:
        return "a,b", ("a", "b")
    return "some-text", "some-text"


def _comparable(spec: SettingSpec, value: Any) -> Any:
    if spec.kind is Kind.BACKENDS:
        return tuple(b.url for b in value)
    return value


def _flag_args(spec: SettingSpec, raw: str) -> list[str]:
    if spec.kind is Kind.BOOL:
        return [spec.flag if raw == "true" else "--no-" + spec.flag.removeprefix("--")]
    if spec.many:  # repeatable: one flag per entry
        return [arg for item in raw.split(",") for arg in (spec.flag, item)]
    return [spec.flag, raw]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_setting_is_settable_by_flag(spec: SettingSpec, tmp_path: Path) -> None:
    raw, expected = _sample(spec)
    args = _flag_args(spec, raw)
    for name, value in COMPANIONS.get(spec.name, {}).items():
        args += [BY_NAME[name].flag, value]
    resolved = resolve_settings(build_parser().parse_args(args), tmp_path, env={})
    assert _comparable(spec, getattr(resolved.settings, spec.name)) == expected
    assert resolved.sources[spec.name].startswith("--")


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_setting_is_settable_by_environment(spec: SettingSpec, tmp_path: Path) -> None:
    raw, expected = _sample(spec)
    env = {spec.env: raw} | {BY_NAME[n].env: v for n, v in COMPANIONS.get(spec.name, {}).items()}
    resolved = resolve_settings(build_parser().parse_args([]), tmp_path, env=env)
    assert _comparable(spec, getattr(resolved.settings, spec.name)) == expected
    assert resolved.sources[spec.name] == spec.env


def test_every_setting_is_documented_in_a_group() -> None:
    assert {s.name for s in SPECS} == set(_DOCS)
    text = build_parser().format_help()
    for group in {s.group for s in SPECS}:
        assert f"\n{group}:\n" in text
    for spec in SPECS:
        assert spec.flag in text and spec.env in text


def test_flag_beats_environment_which_beats_the_file(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(
        json.dumps({"default_rpm": 10, "queue_max": 3, "idle_timeout_s": 9.0})
    )
    env = {"PPLEX_DEFAULT_RPM": "20", "PPLEX_QUEUE_MAX": "4"}
    args = build_parser().parse_args(["--default-rpm", "30"])
    resolved = resolve_settings(args, tmp_path, env=env)
    s = resolved.settings
    assert (s.default_rpm, s.queue_max, s.idle_timeout_s) == (30, 4, 9.0)
    assert resolved.sources["default_rpm"] == "--default-rpm"
    assert resolved.sources["queue_max"] == "PPLEX_QUEUE_MAX"
    assert resolved.sources["idle_timeout_s"] == "settings.json"
    assert resolved.sources["port"] == "default"


def test_the_original_gateways_variables_still_work(tmp_path: Path) -> None:
    env = {
        "MOSHI_HOST": "gpu",
        "MOSHI_PORT": "9999",
        "RATE_LIMIT_RPM": "42",
        "PERSONAPLEX_REPO": "/opt/pp",
    }
    s = resolve_settings(build_parser().parse_args([]), tmp_path, env=env).settings
    assert s.backends == (BackendConfig("ws://gpu:9999"),)
    assert (s.default_rpm, s.personaplex_repo) == (42, "/opt/pp")
    # The new name wins over the old one.
    env["PPLEX_DEFAULT_RPM"] = "43"
    assert (
        resolve_settings(build_parser().parse_args([]), tmp_path, env=env).settings.default_rpm
        == 43
    )


def test_old_flag_meanings_are_kept(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--tls", "auto", "--host", "192.168.1.5", "--voices", "NATF1"]
    )
    s = resolve_settings(args, tmp_path, env={}).settings
    assert s.serve_lan and s.lan_host == "192.168.1.5" and s.host == "127.0.0.1"
    assert s.backends[0].voices == ("NATF1.pt",)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--port", "eighty"], {}, "--port must be a whole number, not 'eighty'."),
        (
            [],
            {"PPLEX_PORT": "70000"},
            "The port 70000 is not between 0 and 65535. (It comes from PPLEX_PORT.)",
        ),
        ([], {"PPLEX_DEMO": "maybe"}, "PPLEX_DEMO must be true or false"),
        (
            ["--trusted-proxy", "proxy.lan"],
            {},
            "trusted_proxies has 'proxy.lan', which is not an IP",
        ),
        (
            ["--offline-engine", "gpu"],
            {},
            "offline_engine must be stream or local. (It comes from --offline-engine.)",
        ),
        ([], {"PPLEX_IDLE_TIMEOUT_S": "nan"}, "PPLEX_IDLE_TIMEOUT_S must be a finite number"),
    ],
)
def test_a_wrong_value_names_the_setting_and_what_is_allowed(
    args: list[str], env: dict[str, str], says: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(build_parser().parse_args(args), tmp_path, env=env)
    assert says in caught.value.message


def _run(data: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PPLEX_", "MOSHI_"))}
    return subprocess.run(
        [sys.executable, "-m", "pplex_desktop.gateway", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | env,
        check=False,
    )


def test_print_config_shows_sources_and_hides_secrets(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(
        json.dumps({"backends": [{"url": "wss://user:s3cr3tpass@gpu.example.org:8998"}]})
    )
    env = {"PPLEX_METRICS_TOKEN": TOKEN, "PPLEX_ADMIN_SECRET": "admin-secret-value-123456789"}
    done = _run(tmp_path, "--print-config", "--allowed-origin", "https://web.example.org", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "allowed_origins = https://web.example.org    (--allowed-origin)" in out
    assert "metrics_token = (set, hidden)    (PPLEX_METRICS_TOKEN)" in out
    assert "(settings.json)" in out and "port = 8000    (default)" in out
    for secret in (TOKEN, "s3cr3tpass", "admin-secret-value-123456789"):
        assert secret not in out + done.stderr
    assert not (tmp_path / "pplex.sqlite3").exists() or "Save this key" not in out


def test_a_wrong_value_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    done = _run(tmp_path, "--queue-max", "-1", env={})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pplex-gateway: The queue length cannot be negative. (It comes from --queue-max.)"
    )


async def _read_until(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> str:
    async with asyncio.timeout(30):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"the gateway ended before saying {needle!r}: {''.join(seen)}"
            seen.append(line)
            if needle in line:
                return line


async def test_sighup_reloads_what_needs_no_restart_and_names_the_rest(tmp_path: Path) -> None:
    origin = "https://web.example.org"
    (tmp_path / "settings.json").write_text(json.dumps({"demo": True}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PPLEX_", "MOSHI_"))}
    admin = "sighup-admin-secret-0123456789"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.gateway",
        "--data-dir",
        str(tmp_path),
        "--port",
        "0",
        "--log-level",
        "INFO",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean | {"PPLEX_ADMIN_SECRET": admin},
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await _read_until(proc.stdout, "is listening on", [])
        url = line.split("is listening on ", 1)[1].split(" ", 1)[0]
        async with aiohttp.ClientSession() as http:
            async with http.post(
                url + "/admin/keys/generate",
                headers={"X-Admin-Secret": admin},
                data={"name": "web"},
            ) as resp:
                key = (await resp.json())["key"]
            headers = {"X-API-Key": key, "Origin": origin}
            async with http.get(url + "/v1/info", headers=headers) as resp:
                assert resp.status == 403
            (tmp_path / "settings.json").write_text(
                json.dumps({"demo": True, "allowed_origins": [origin], "lan_port": 9555})
            )
            proc.send_signal(signal.SIGHUP)
            seen: list[str] = []
            applied = await _read_until(proc.stderr, "Reloaded settings now in effect", seen)
            assert "allowed_origins" in applied and "lan_port" not in applied
            restart = await _read_until(proc.stderr, "only after a restart", seen)
            assert restart.rstrip().endswith("only after a restart: lan_port.")
            async with http.get(url + "/v1/info", headers=headers) as resp:
                assert resp.status == 200
            # A broken file is refused with a sentence; the running settings stay.
            (tmp_path / "settings.json").write_text(json.dumps({"queue_max": -1}))
            proc.send_signal(signal.SIGHUP)
            refused = await _read_until(proc.stderr, "not reloaded", seen)
            assert "The queue length cannot be negative." in refused
            async with http.get(url + "/v1/info", headers=headers) as resp:
                assert resp.status == 200
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def _chat_status(url: str, key: str, origin: str) -> int | bytes:
    """What NVIDIA's web client, served from ``origin``, gets from /api/chat."""
    query = {"api_key": key, "text_prompt": "Hello.", "voice_prompt": "NATF2.pt"}
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(
                url.replace("http", "ws", 1) + "/api/chat", params=query, headers={"Origin": origin}
            ) as ws:
                msg = await asyncio.wait_for(ws.receive(), 15)
                return bytes(msg.data)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_the_personaplex_web_client_needs_one_flag(tmp_path: Path) -> None:
    origin = "https://personaplex.example.org"
    admin = "webclient-admin-secret-0123456789"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PPLEX_", "MOSHI_"))}
    for extra, expected in (((), 403), (("--allowed-origin", origin), b"\x00")):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pplex_desktop.gateway", "--data-dir", str(tmp_path),
            "--port", "0", "--demo", "--log-level", "WARNING", *extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=clean | {"PPLEX_ADMIN_SECRET": admin},
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = await _read_until(proc.stdout, "is listening on", [])
            url = line.split("is listening on ", 1)[1].split(" ", 1)[0]
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    url + "/admin/keys/generate",
                    headers={"X-Admin-Secret": admin},
                    data={"name": "web client"},
                ) as resp,
            ):
                key = (await resp.json())["key"]
            answer = await _chat_status(url, key, origin)
            if isinstance(answer, bytes):
                answer = answer[:1]  # the handshake byte, then whatever the server adds
            assert answer == expected
        finally:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_a_reload_takes_new_public_hosts_at_once(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    headers = {"Host": "gw.example.org"}
    async with gw.http.get(gw.url + "/healthz", headers=headers) as resp:
        assert resp.status == 421
    result = gw.runner.reload(gw.runner.settings.replace(public_hosts=("gw.example.org",), port=1))
    assert result.applied == ("public_hosts",) and result.need_restart == ("port",)
    async with gw.http.get(gw.url + "/healthz", headers=headers) as resp:
        assert resp.status == 200
