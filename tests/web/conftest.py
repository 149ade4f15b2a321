"""The talk page in headless Chromium, over HTTPS, with a fake microphone that speaks.

One browser for the whole session (it is the expensive part); a fresh context per test. The
browser trusts the gateway's generated CA through a real trust path: an NSS database made with
``certutil`` in a throwaway HOME (Chromium on Linux reads ``$HOME/.pki/nssdb``), and
``ignore_https_errors`` stays off, so a wrong certificate would fail the page load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import soundfile
import soxr

from pplex_desktop.core.clock import SystemClock
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.gateway.lan.tls import TLS_FOLDER, TlsInfo, ensure_local_certificates
from pplex_desktop.gateway.server import GatewayRunner
from pplex_desktop.sim.sim import SimConfig, SimServer
from tests.running_gateway import RunningGateway
from tests.skips import skip_or_fail

CHROMIUM = "/usr/bin/chromium"
SPOKEN = "Hello there. I would like to book a tune up for my bicycle on Tuesday morning."
# Plain HTTP on a name that is not loopback: the one way to see an insecure context here.
INSECURE_HOST = "lan.test"


@dataclass
class WebGateway(RunningGateway):
    sims: list[SimServer]

    key_name: ClassVar[str] = "web test"

    @property
    def https_url(self) -> str:
        """The LAN site, by a name its certificate carries."""
        assert self.runner.lan_address is not None
        return f"https://localhost:{self.runner.lan_address.port}"

    @property
    def plain_url(self) -> str:
        return self.url


WebGatewayFactory = Callable[..., Awaitable[WebGateway]]


@pytest.fixture(scope="session")
def fake_mic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken sentence at 48 kHz: what Chromium's fake microphone plays in a loop."""
    if shutil.which("espeak-ng") is None:
        skip_or_fail("espeak-ng is not installed (./dev.sh test installs it).")
    folder = tmp_path_factory.mktemp("mic")
    raw = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), SPOKEN], check=True, capture_output=True)
    audio, rate = soundfile.read(raw, dtype="float32")
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    # A second of silence between repeats, as a person pauses.
    mono = np.concatenate([mono, np.zeros(rate, dtype=np.float32)])
    out = folder / "mic-48k.wav"
    soundfile.write(out, soxr.resample(mono, rate, 48_000), 48_000, subtype="PCM_16")
    return out


@pytest.fixture(scope="session")
def web_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsInfo:
    folder = tmp_path_factory.mktemp("web-tls") / TLS_FOLDER
    return ensure_local_certificates(folder)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (./dev.sh test installs it).")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser_home(tmp_path_factory: pytest.TempPathFactory, web_tls: TlsInfo) -> Path:
    """A HOME whose NSS database trusts the gateway's CA and nothing else of ours."""
    if shutil.which("certutil") is None:
        skip_or_fail("certutil is not installed (libnss3-tools; ./dev.sh test installs it).")
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    ca_file = web_tls.cert_path.parent / "ca.crt"
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-n",
            "pplex test CA",
            "-t",
            "C,,",
            "-i",
            str(ca_file),
        ],
        check=True,
        capture_output=True,
    )
    return home


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str, fake_mic: Path, browser_home: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[test]').")
    playwright = await async_playwright().start()
    try:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_mic}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
            ],
            env={**os.environ, "HOME": str(browser_home)},
        )
    except Exception as exc:  # any launch failure means: this machine cannot run the tier
        await playwright.stop()
        skip_or_fail(f"Chromium could not be launched: {exc}")
    yield launched
    await launched.close()
    await playwright.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def make_web_gateway(web_tls: TlsInfo, tmp_path: Path) -> AsyncIterator[WebGatewayFactory]:
    made: list[WebGateway] = []

    async def factory(
        *,
        sim_config: SimConfig | None = None,
        backends: tuple[str, ...] | None = None,
        **settings: Any,
    ) -> WebGateway:
        sims: list[SimServer] = []
        if backends is None:
            sim = SimServer(sim_config or SimConfig(echo_delay_frames=2))
            await sim.start("127.0.0.1", 0)
            sims.append(sim)
            backends = (sim.url or "",)
        store = KeyStore(tmp_path / f"web{len(made)}.sqlite3", clock=SystemClock())
        base = Settings(
            host="127.0.0.1",
            port=0,
            serve_lan=True,
            lan_host="127.0.0.1",
            lan_port=0,
            backends=tuple(BackendConfig(url) for url in backends),
        )
        runner = GatewayRunner(base.replace(**settings), store, tls_folder=web_tls.cert_path.parent)
        await runner.start()
        assert runner.tls is not None
        assert runner.tls.fingerprint_sha256 == web_tls.fingerprint_sha256  # the trusted CA
        gateway = WebGateway(runner, store, aiohttp.ClientSession(), sims)
        made.append(gateway)
        return gateway

    yield factory
    for gateway in made:
        await gateway.http.close()
        await gateway.runner.stop()
        for sim in gateway.sims:
            await sim.stop()
        gateway.store.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page_factory(browser: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    contexts: list[Any] = []
    problems: list[str] = []

    async def factory(**options: Any) -> Any:
        context = await browser.new_context(ignore_https_errors=False, **options)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        return page

    yield factory
    for context in contexts:
        await context.close()
    # An uncaught exception in the page is a bug even when the assertions passed.
    assert not problems, problems
