"""Running the gateway: on the current loop (GatewayRunner) or on its own thread (GatewayServer).

The desktop app uses GatewayServer so the Qt main thread never waits on the network; the
headless CLI and the tests use GatewayRunner directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from pplex_desktop.core.clock import Clock, SystemClock
from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.keystore import KeyStore
from pplex_desktop.core.loop_thread import LoopThread
from pplex_desktop.core.redact import install_redacting_filter
from pplex_desktop.core.settings import BackendConfig, Settings
from pplex_desktop.core.tasks import stop_task
from pplex_desktop.gateway.api.metrics import GatewayFigures, figures
from pplex_desktop.gateway.api.metrics_api import LAN_SSL
from pplex_desktop.gateway.api.voices_api import StoredVoice as StoredVoice  # noqa: PLC0414 (re-exported for the UI)
from pplex_desktop.gateway.api.voices_api import VoiceFolder as VoiceFolder  # noqa: PLC0414 (re-exported for the UI)
from pplex_desktop.gateway.api.voices_api import add_voice, libraries, remove_voice
from pplex_desktop.gateway.app import create_app
from pplex_desktop.gateway.context import GatewayContext
from pplex_desktop.gateway.edge.accesslog import RedactingAccessLogger
from pplex_desktop.gateway.edge.burstlog import WINDOW_S, BurstLog, install_accept_filter
from pplex_desktop.gateway.edge.connections import ConnectionGuard, ConnectionLimits
from pplex_desktop.gateway.edge.hosts import ALLOWED_HOSTS
from pplex_desktop.gateway.edge.listener import AcceptGate, GatedSite
from pplex_desktop.gateway.edge.protocol import GuardedRunner
from pplex_desktop.gateway.events import (
    EventHub,
    GatewayStarted,
    GatewayStopped,
    KeysChanged,
    RequestServed,
)
from pplex_desktop.gateway.lan.tls import LAN_TLS, IPAddress, TlsInfo, lan_urls, prepare_tls
from pplex_desktop.gateway.pool.backends import BackendPool
from pplex_desktop.gateway.pool.backends import BackendStatus as BackendStatus  # noqa: PLC0414 (re-exported for the UI)
from pplex_desktop.gateway.reload import Reloaded, apply_settings

if TYPE_CHECKING:
    from pplex_desktop.sim.sim import SimServer

_log = logging.getLogger(__name__)
T = TypeVar("T")
DEMO_LABEL = "demo: echoes your voice"
SHUTDOWN_TIMEOUT_S = 5.0


class GatewayStartError(PplexError):
    code = "gateway_start_failed"
    status = 500


class GatewayState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        """A URL that reaches the gateway from this machine."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # a wildcard is reached via loopback
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def _bind_error(host: str, port: int, exc: OSError) -> GatewayStartError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return GatewayStartError(
            f"Port {port} on {host} is already in use by another program. Stop that program "
            "or choose another port (--port, or the port field in Settings)."
        )
    if exc.errno == errno.EACCES:
        return GatewayStartError(
            f"This user may not listen on {where}: ports below 1024 need administrator rights. "
            "Choose a port above 1024."
        )
    return GatewayStartError(
        f"The gateway cannot listen on {where}: {exc.strerror or exc}. Check the listening "
        "address in Settings (127.0.0.1 for this machine only, 0.0.0.0 for the network)."
    )


def plain_host(settings: Settings) -> str:
    """Where plain HTTP listens: with the LAN served over HTTPS it must not leave this machine."""
    host = settings.host
    if not settings.serve_lan or host == "localhost":
        return host
    try:
        return host if ipaddress.ip_address(host).is_loopback else "127.0.0.1"
    except ValueError:
        return "127.0.0.1"


def network_urls(address: GatewayAddress, ips: Iterable[IPAddress] | None = None) -> list[str]:
    """The URLs other devices use: every interface's address for a wildcard listener (its
    loopback URL is no use to a phone), else the one address it is bound to."""
    if address.host in ("0.0.0.0", "::", ""):
        found = lan_urls(address.port, tls=address.tls, ips=ips)
        if address.host == "0.0.0.0":
            found = [url for url in found if "[" not in url]  # IPv4 only on 0.0.0.0
        if found:
            return found
    return [address.url]


DEMO_VOICES_FOLDER = "voices"


async def _summarize_bursts(burst: BurstLog) -> None:
    try:
        while True:
            await asyncio.sleep(WINDOW_S / 2)
            burst.tick()
    finally:
        burst.flush()


class GatewayRunner:
    """The gateway on the running asyncio loop.

    One site on ``settings.host:port`` (HTTPS when ``ssl_context`` is given); with
    ``settings.serve_lan`` a second, HTTPS site on ``lan_host:lan_port`` while the first stays
    plain HTTP on loopback for this machine's own clients.
    """

    def __init__(
        self,
        settings: Settings,
        keystore: KeyStore,
        *,
        clock: Clock | None = None,
        events: EventHub | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tls_folder: Path | None = None,
    ) -> None:
        self.settings = settings
        self.keystore = keystore
        self.clock = clock or SystemClock()
        self.events = events or EventHub()
        self.ssl_context = ssl_context
        self.tls_folder = tls_folder  # default: the data folder's tls/
        self.address: GatewayAddress | None = None
        self.lan_address: GatewayAddress | None = None
        self.tls: TlsInfo | None = None
        self.demo: SimServer | None = None  # the built-in simulator, in demo mode
        self.ctx: GatewayContext | None = None
        self.guard: ConnectionGuard | None = None
        self._runner: web.AppRunner | None = None
        self._burst_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _backends(self) -> tuple[BackendConfig, ...]:
        if not self.settings.demo:
            return self.settings.backends
        # Imported here: the simulator pulls in the Opus codec, which a desktop start-up
        # with a real model server never needs.
        from pplex_desktop.sim.sim import SimConfig, SimServer

        # The demo keeps custom voices in the data folder, as a real single-box server would in
        # its --voice-prompt-dir, so recording a voice can be tried without a GPU.
        voices = self.keystore.db.path.parent / DEMO_VOICES_FOLDER
        await asyncio.to_thread(voices.mkdir, exist_ok=True)
        self.demo = SimServer(
            SimConfig(prompt_delay_s=0.3, echo_delay_frames=4, voice_dir=str(voices))
        )
        url = await self.demo.start("127.0.0.1", 0)
        return (BackendConfig(url, name=DEMO_LABEL, voice_dir=str(voices)),)

    async def start(self) -> GatewayAddress:
        tls: TlsInfo | None = None
        lan_context: ssl.SSLContext | None = None
        if self.settings.serve_lan:
            # Key generation and file writes stay off the loop the desktop's gateway runs on.
            tls = await asyncio.to_thread(prepare_tls, self.settings, self.tls_folder)
            lan_context = tls.server_context()
        backends = await self._backends()
        # Health checks and backoff run on real time even when tests fake the clock for limits.
        pool = BackendPool(backends, SystemClock(), on_change=self.events.emit)
        self.ctx = GatewayContext(self.settings, self.keystore, self.clock, self.events, pool)
        app = create_app(self.ctx)
        if tls is not None:
            app[LAN_TLS] = tls
        if lan_context is not None:
            app[LAN_SSL] = lan_context
        install_accept_filter()
        install_redacting_filter("aiohttp.server", "aiohttp.web", "aiohttp.access", "asyncio")
        limits = ConnectionLimits.from_settings(self.settings)
        if limits.clamped_from is not None:
            _log.warning(
                "The connection limit %d is more than the open-file limit allows; the gateway "
                "holds at most %d connections.",
                limits.clamped_from,
                limits.max_connections,
            )
        guard = ConnectionGuard(limits)
        burst = BurstLog(logging.getLogger("pplex_desktop.gateway.edge.connections"))
        gate = AcceptGate(limits.max_sockets, burst)
        runner = GuardedRunner(
            app,
            guard,
            burst,
            gate,
            access_log_class=RedactingAccessLogger,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        sites = [(plain_host(self.settings), self.settings.port, self.ssl_context)]
        if lan_context is not None:
            sites.append((self.settings.lan_host, self.settings.lan_port, lan_context))
        bound: list[GatewayAddress] = []
        for host, port, context in sites:
            known = len(runner.addresses)
            try:
                await GatedSite(
                    runner,
                    host,
                    port,
                    gate=gate,
                    handshake_timeout_s=limits.tls_handshake_timeout_s,
                    ssl_context=context,
                ).start()
            except OSError as exc:
                await runner.cleanup()
                await self._stop_demo()
                raise _bind_error(host, port, exc) from None
            found = runner.addresses[known:]
            actual = int(found[0][1]) if found else port  # port 0 means "any free port"
            bound.append(GatewayAddress(host, actual, context is not None))
        self._runner = runner
        self.guard = guard
        self._burst_task = asyncio.create_task(_summarize_bursts(burst), name="burst-log")
        self.address = bound[0]
        self.lan_address = bound[1] if len(bound) > 1 else None
        self.tls = tls
        self._loop = asyncio.get_running_loop()
        self.keystore.add_listener(self._keys_changed)
        _log.info("The gateway listens on %s.", self.address.url)
        if self.lan_address is not None and tls is not None:
            _log.info(
                "The gateway serves the network on %s (certificate fingerprint %s).",
                ", ".join(network_urls(self.lan_address)),
                tls.fingerprint_sha256,
            )
        self.events.emit(
            GatewayStarted(
                self.address.url,
                self.address.host,
                self.address.port,
                self.demo.url if self.demo else None,
            )
        )
        return self.address

    def reload(self, settings: Settings) -> Reloaded:
        """Read the keys again and take on the settings that need no restart."""
        if self.ctx is None or self._runner is None:
            raise GatewayStartError("The gateway is not running; there is nothing to reload.")
        self.keystore.reload()
        result = apply_settings(self.ctx, self._runner.app.get(ALLOWED_HOSTS), settings)
        self.settings = self.ctx.settings
        return result

    def _keys_changed(self) -> None:
        # The desktop writes keys in its own disk thread: the event still goes out on this loop.
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self.events.emit(KeysChanged())
            return
        try:
            loop.call_soon_threadsafe(self.events.emit, KeysChanged())
        except RuntimeError:
            _log.debug("A key changed after the gateway's loop closed; nobody is told.")

    async def _stop_demo(self) -> None:
        if self.demo is not None:
            await self.demo.stop()
            self.demo = None

    async def stop(self, reason: str = "stopped") -> None:
        runner, self._runner = self._runner, None
        self.keystore.remove_listener(self._keys_changed)
        task, self._burst_task = self._burst_task, None
        if task is not None:
            await stop_task(task)
        if runner is not None:
            await runner.cleanup()
            _log.info("The gateway has stopped (%s).", reason)
            self.events.emit(GatewayStopped(reason))
        await self._stop_demo()
        self.address = None
        self.lan_address = None
        self.tls = None


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """What any thread may know of the gateway at one moment: replaced whole, never changed,
    so a reader never sees a state from one moment beside an address from another."""

    state: GatewayState
    failure: str | None = None  # why the last start failed, in a sentence
    address: GatewayAddress | None = None  # set exactly while RUNNING
    lan_address: GatewayAddress | None = None  # the HTTPS site for the network, when served
    tls: TlsInfo | None = None  # its certificate: the fingerprint for the user, the CA


class GatewayServer:
    """The gateway on its own thread, for the desktop app.

    Its loop does gateway work only: the desktop has its own I/O loop and disk thread.

    Safe from any thread: ``status`` and the properties read from it (``state``, ``failure``,
    ``address``, ``lan_address``, ``tls``), ``settings`` and ``ssl_context`` (all read under
    one lock, and immutable once read), ``reconfigure``, and every method that returns a
    future: those hop onto the gateway's loop, where its live state is. ``voice_libraries``
    reads only the backend list and custom-voice tuples, which are replaced and never mutated,
    and the voice folders on disk. ``runner`` and ``figures`` belong to the gateway thread
    (tests that run on its loop).
    """

    def __init__(
        self,
        settings: Settings,
        keystore: KeyStore,
        *,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tls_folder: Path | None = None,
    ) -> None:
        self.keystore = keystore
        self.clock = clock
        self.tls_folder = tls_folder
        self.events = EventHub()
        self.thread = LoopThread("pplex-gateway")
        self._lock = threading.Lock()
        self._config = (settings, ssl_context)  # replaced as a pair, under the lock
        self._status = GatewayStatus(GatewayState.STOPPED)
        self._runner: GatewayRunner | None = None  # the gateway thread's own
        # Conversations served per model server (by its label), kept across restarts: turning
        # on the LAN or changing a setting restarts the gateway, not the day's figures.
        self._served: dict[str, int] = {}

    @property
    def status(self) -> GatewayStatus:
        with self._lock:
            return self._status

    def _set_status(self, status: GatewayStatus) -> None:
        with self._lock:
            self._status = status

    @property
    def state(self) -> GatewayState:
        return self.status.state

    @property
    def failure(self) -> str | None:
        return self.status.failure

    @property
    def address(self) -> GatewayAddress | None:
        return self.status.address

    @property
    def lan_address(self) -> GatewayAddress | None:
        """The HTTPS site for the network, when ``serve_lan`` is on."""
        return self.status.lan_address

    @property
    def tls(self) -> TlsInfo | None:
        """The LAN certificate: its fingerprint for the user, the CA for download."""
        return self.status.tls

    @property
    def settings(self) -> Settings:
        with self._lock:
            return self._config[0]

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        with self._lock:
            return self._config[1]

    @property
    def runner(self) -> GatewayRunner | None:
        """The running gateway itself: on the gateway thread only."""
        return self._runner

    def figures(self) -> GatewayFigures | None:
        """What /metrics reads too: sessions, queue, model servers. Call on the gateway thread."""
        runner = self._runner
        if runner is None or runner.ctx is None:
            return None
        return figures(runner.ctx)

    async def _start(self) -> GatewayAddress:
        if self._runner is not None and self._runner.address is not None:
            return self._runner.address
        with self._lock:
            settings, ssl_context = self._config
        self._set_status(GatewayStatus(GatewayState.STARTING))
        runner = GatewayRunner(
            settings,
            self.keystore,
            clock=self.clock,
            events=self.events,
            ssl_context=ssl_context,
            tls_folder=self.tls_folder,
        )
        try:
            address = await runner.start()
        except PplexError as exc:
            self._set_status(GatewayStatus(GatewayState.FAILED, failure=exc.message))
            raise
        self._runner = runner
        if runner.ctx is not None:
            for backend in runner.ctx.backends.backends:
                backend.sessions_served += self._served.get(backend.config.label, 0)
        self._set_status(
            GatewayStatus(
                GatewayState.RUNNING,
                address=address,
                lan_address=runner.lan_address,
                tls=runner.tls,
            )
        )
        return address

    async def _stop(self, reason: str) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._set_status(GatewayStatus(GatewayState.STOPPING))
        if runner.ctx is not None:
            for backend in runner.ctx.backends.backends:
                self._served[backend.config.label] = backend.sessions_served
        try:
            await runner.stop(reason)
        finally:
            self._set_status(GatewayStatus(GatewayState.STOPPED))

    def _on_loop(
        self, read: Callable[[GatewayRunner], T], empty: T
    ) -> concurrent.futures.Future[T]:
        """``read(runner)`` on the gateway's loop, or ``empty`` while it is not serving."""

        async def hop() -> T:
            runner = self._runner
            return empty if runner is None or runner.ctx is None else read(runner)

        self.thread.start()
        return self.thread.submit(hop())

    def backend_statuses(self) -> concurrent.futures.Future[list[BackendStatus]]:
        """The model servers' health, busy flag and counters."""
        return self._on_loop(lambda r: r.ctx.backends.statuses() if r.ctx else [], [])

    def recent_requests(self) -> concurrent.futures.Future[list[RequestServed]]:
        """The requests served lately, oldest first (kept across restarts)."""

        async def hop() -> list[RequestServed]:
            return list(self.events.recent_requests)

        self.thread.start()
        return self.thread.submit(hop())

    def voices(self) -> concurrent.futures.Future[tuple[tuple[str, ...], str] | None]:
        """The voices of the model servers that run now and the default voice."""
        return self._on_loop(
            lambda r: (r.ctx.backends.voices(), r.ctx.settings.default_voice) if r.ctx else None,
            None,
        )

    def start_future(self) -> concurrent.futures.Future[GatewayAddress]:
        self.thread.start()
        return self.thread.submit(self._start())

    def start(self, timeout: float = 30.0) -> GatewayAddress:
        return self.start_future().result(timeout)

    def stop_future(self, reason: str = "stopped") -> concurrent.futures.Future[None]:
        self.thread.start()
        return self.thread.submit(self._stop(reason))

    def stop(self, reason: str = "stopped", timeout: float = 30.0) -> None:
        if self.thread.running:
            self.stop_future(reason).result(timeout)

    def add_voice_future(
        self, source: Path, name: str, consent: bool
    ) -> concurrent.futures.Future[StoredVoice]:
        """Check, prepare and store a recording as the custom voice ``name`` (the desktop
        owner's own upload, recorded as "admin"). Raises the same PplexErrors as the API."""
        return self.thread.submit(self._add_voice(source, name, consent))

    async def _add_voice(self, source: Path, name: str, consent: bool) -> StoredVoice:
        runner = self._runner
        if runner is None or runner.ctx is None:
            raise GatewayStartError("The gateway is not running; start it to store voices.")
        return await add_voice(runner.ctx, source, name, consent=consent, by="admin", key_id=None)

    def remove_voice_future(self, name: str) -> concurrent.futures.Future[bool]:
        return self.thread.submit(self._remove_voice(name))

    async def _remove_voice(self, name: str) -> bool:
        runner = self._runner
        if runner is None or runner.ctx is None:
            raise GatewayStartError("The gateway is not running; start it to remove voices.")
        return await remove_voice(runner.ctx, name)

    def voice_libraries(self) -> list[VoiceFolder]:
        """Each backend's voice folder and its custom voices (blocking file checks: call it
        off the Qt thread or accept a few milliseconds)."""
        runner = self._runner
        if runner is None or runner.ctx is None:
            return []
        return libraries(runner.ctx)

    def reconfigure(self, settings: Settings, ssl_context: ssl.SSLContext | None = None) -> None:
        """New settings take effect at the next start."""
        with self._lock:
            self._config = (settings, ssl_context)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop serving and end the gateway thread (application exit)."""
        self.stop("the application is quitting", timeout)
        self.thread.stop(timeout)
