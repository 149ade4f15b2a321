"""pplex-gateway --tls auto: HTTPS for the network, plain HTTP kept on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import sys
from pathlib import Path

import aiohttp

from tests.gateway.test_cli import _start, _stop, _url

SECRET_ENV = {"PPLEX_ADMIN_SECRET": "a-long-enough-admin-secret"}


async def test_tls_auto_serves_https_with_a_local_ca(tmp_path: Path) -> None:
    proc, lines = await _start(
        tmp_path,
        "--demo",
        "--tls",
        "auto",
        "--host",
        "127.0.0.1",
        "--lan-port",
        "0",
        env=SECRET_ENV,
    )
    try:
        assert proc.stdout is not None
        while not any("SHA-256 fingerprint" in line for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "".join(lines)
            lines.append(line)
        plain = _url(lines)
        assert plain.startswith("http://127.0.0.1:")
        serving = next(x for x in lines if "over HTTPS on" in x)
        lan = serving.split("over HTTPS on ", 1)[1].split(":", 2)
        lan_url = ":".join(lan[:2]) + ":" + lan[2].split(":", 1)[0]
        assert lan_url.startswith("https://127.0.0.1:")
        printed = next(x for x in lines if "SHA-256 fingerprint" in x)
        ca_file = tmp_path / "tls" / "ca.crt"
        trust = ssl.create_default_context(cafile=str(ca_file))
        async with aiohttp.ClientSession() as http:
            async with http.get(lan_url + "/ca.crt", ssl=trust) as resp:
                assert resp.status == 200
                der = await resp.read()
            async with http.get(plain + "/healthz") as resp:
                assert resp.status == 200
        digest = hashlib.sha256(der).hexdigest().upper()
        assert ":".join(digest[i : i + 2] for i in range(0, 64, 2)) in printed
    finally:
        assert await _stop(proc) == 0


async def test_a_certificate_without_its_key_is_a_sentence(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pplex_desktop.gateway",
        "--data-dir",
        str(tmp_path),
        "--tls-cert",
        str(tmp_path / "cert.pem"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "A TLS certificate and its key go together" in err.decode()
    assert "Traceback" not in err.decode()
