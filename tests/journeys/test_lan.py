"""Journey 7: serving the LAN. The switch starts an HTTPS site; "Pair a device" shows a QR code
that decodes to the talk page's URL with a key in its fragment; that page answers over HTTPS
with the app's own CA, and the key works. SIGINT with the pairing dialog open ends the app."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.journeys.conftest import Launch
from tests.journeys.harness import EXIT_BUDGET_S, JourneyFailure, Screen, save_png, wait_until
from tests.journeys.http import https_via_loopback

PAIR = "^Pair a device$"


def own_addresses() -> set[str]:
    return {
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }


def read_qr(png: Path) -> str | None:
    """The text of the QR code in ``png``; None while there is none to read."""
    done = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(png)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # zbarimg exits 4 when it found no code; anything else is the tool failing.
    if done.returncode not in (0, 4):
        raise JourneyFailure(f"zbarimg failed on {png.name}: {done.stderr.strip()}")
    return done.stdout.strip() or None


def test_pairing_a_device_over_the_lan(launch: Launch, screen: Screen, tmp_path: Path) -> None:
    if shutil.which("zbarimg") is None:
        pytest.fail("zbarimg is missing (apt install zbar-tools; ./dev.sh test does).")
    data = tmp_path / "data"
    data.mkdir()
    # Any free port for the LAN site: a fixed 8443 may be taken by another run on this machine.
    (data / "settings.json").write_text(json.dumps({"lan_port": 0}))
    app = launch(data_dir=data)
    window = app.window()
    app.gateway_url()
    screen.focus(window)
    before = screen.shot("server-local")
    screen.key("alt+l")  # Serve on local network
    log = app.wait_log("The gateway serves the network on", timeout=30)
    port = int(re.findall(r"serves the network on https://[^ ]+?:(\d+)", log)[-1])
    x, y, w, h = screen.geometry(window)
    screen.repaints(before, "the LAN switch")

    def pair_enabled() -> str | None:
        screen.key("alt+p")  # Pair a device…; disabled until the LAN site runs
        ids = screen.windows(PAIR)
        return ids[-1] if ids else None

    dialog = wait_until(pair_enabled, "the pairing dialog", every=0.5)
    screen.focus(dialog)
    screen.key("alt+m")  # Make the code
    qr_png = tmp_path / "pair-qr.png"

    def code_shown() -> str | None:
        # The key is made on the gateway thread: the button greys out at once, the code comes
        # later. A person looks until it is there; so does this, at whatever is on screen.
        gx, gy, gw, gh = screen.geometry(dialog)
        save_png(screen.grab()[gy : gy + gh, gx : gx + gw], qr_png)
        return read_qr(qr_png)

    url = wait_until(code_shown, "a readable QR code in the pairing dialog", timeout=30, every=0.5)
    screen.shot("pair", region=screen.geometry(dialog))
    screen.shot("server-lan", region=(x, y, w, h))

    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.port == port, url
    assert re.fullmatch(r"key=pplx_[A-Za-z0-9_-]+", parts.fragment), url
    key = parts.fragment.removeprefix("key=")
    host = parts.hostname or ""
    assert not ipaddress.ip_address(host).is_loopback, "a phone cannot reach a loopback address"
    assert host in own_addresses(), f"{host} is not an address of this machine"

    # As the phone would ask (that Host, the certificate checked for that address), over
    # loopback: the site listens on every interface, and tests never leave 127.0.0.1.
    ca = data / "tls" / "ca.crt"
    status, page = https_via_loopback(f"https://{host}:{port}/", ca_file=ca)
    assert status == 200 and "<html" in str(page).lower(), page
    status, info = https_via_loopback(
        f"https://{host}:{port}/v1/info", headers={"X-API-Key": key}, ca_file=ca
    )
    assert status == 200, info
    assert app.stop(signal.SIGINT) < EXIT_BUDGET_S  # the pairing dialog is still open
