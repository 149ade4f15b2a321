"""The model servers behind the gateway and whether each one answers.

A health check must never open /api/chat: the server would take its one-conversation lock
for it, or queue it silently behind a live caller. An HTTP GET of / (the servers' web UI, or
any 404) proves the process is up without touching the model.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from pplex_desktop.core.clock import Clock
from pplex_desktop.core.redact import redact_url
from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.gateway.api.voice_library import VoiceLibrary
from pplex_desktop.gateway.events import BackendHealthChanged

_log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 10.0
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


# Answers to the upgrade that refuse this one request (aiohttp answers 400 for a request target
# over 8,190 bytes) from a server that is up and serving. 401, 403, 404 and 405 are not among
# them: they say the server refuses every caller, which is a fault of the backend.
REQUEST_REFUSALS = frozenset({400, 413, 414, 422, 431})


def refused_status(exc: BaseException) -> int | None:
    """The status when the server refused this request only, else None.

    Such a refusal is no reason to take the server out of service.
    """
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in REQUEST_REFUSALS:
        return exc.status
    return None


def failure_cause(exc: BaseException) -> str:
    """Why connecting failed, in words fit for a client: no address, path or query in them."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"it answered HTTP {exc.status} instead of opening a session"
    if isinstance(exc, TimeoutError):
        return "the connection timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = exc.os_error.errno == errno.ECONNREFUSED
        return "the connection was refused" if refused else "the connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "it closed the connection"
    return "the connection failed"


@dataclass(frozen=True, slots=True)
class BackendStatus:
    url: str
    label: str
    healthy: bool | None  # None until the first check
    detail: str
    voices: tuple[str, ...]
    busy: bool
    sessions_served: int
    queue_length: int  # callers waiting who could use this backend


class Backend:
    def __init__(self, config: BackendConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.healthy: bool | None = None
        self.detail = "not checked yet"
        self.failures = 0
        self.next_check_at = 0.0
        self.busy = False
        self.sessions_served = 0
        self.queue_length = 0
        self.library = VoiceLibrary(Path(config.voice_dir)) if config.voice_dir else None
        # WAV voices found in (or stored into) the library, beside the configured list.
        self.custom_voices: tuple[str, ...] = self.library.scan() if self.library else ()

    @property
    def voices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.config.voices + self.custom_voices))

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def http_url(self) -> str:
        return self.config.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)

    @property
    def chat_url(self) -> str:
        return self.config.url + "/api/chat"

    def status(self) -> BackendStatus:
        return BackendStatus(
            redact_url(self.url),
            self.config.label,
            self.healthy,
            self.detail,
            self.voices,
            self.busy,
            self.sessions_served,
            self.queue_length,
        )


class BackendPool:
    def __init__(
        self,
        configs: tuple[BackendConfig, ...],
        clock: Clock,
        on_change: Callable[[BackendHealthChanged], None] | None = None,
    ) -> None:
        self.backends = [Backend(c, i) for i, c in enumerate(configs)]
        self._clock = clock
        self._listeners: list[Callable[[BackendHealthChanged], None]] = []
        if on_change is not None:
            self._listeners.append(on_change)
        self._session: aiohttp.ClientSession | None = None
        self._ws_session: aiohttp.ClientSession | None = None
        # Storing and removing custom voices one at a time: two uploads of one name must not
        # both pass the "name is free" check.
        self.voices_lock = asyncio.Lock()

    def add_listener(self, listener: Callable[[BackendHealthChanged], None]) -> None:
        self._listeners.append(listener)

    def replace(self, configs: tuple[BackendConfig, ...]) -> None:
        self.backends = [Backend(c, i) for i, c in enumerate(configs)]

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S), trust_env=False
        )
        # Conversations last minutes: only connecting may time out, never the session itself.
        self._ws_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S),
            trust_env=False,
        )

    async def close(self) -> None:
        for session in (self._session, self._ws_session):
            if session is not None:
                await session.close()
        self._session = self._ws_session = None

    @property
    def ws_session(self) -> aiohttp.ClientSession:
        if self._ws_session is None:
            raise RuntimeError("The backend pool is not open.")
        return self._ws_session

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("The backend pool is not open.")
        return self._session

    def statuses(self) -> list[BackendStatus]:
        return [b.status() for b in self.backends]

    def voices(self) -> tuple[str, ...]:
        """Voices offered by any backend, in first-seen order."""
        seen: dict[str, None] = {}
        for backend in self.backends:
            seen.update(dict.fromkeys(backend.voices))
        return tuple(seen)

    def _set_health(self, backend: Backend, healthy: bool, detail: str) -> None:
        changed = backend.healthy != healthy
        backend.healthy = healthy
        backend.detail = detail
        now = self._clock.monotonic()
        if healthy:
            backend.failures = 0
            backend.next_check_at = now + MAX_BACKOFF_S / 3
        else:
            backend.failures += 1
            delay = min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (backend.failures - 1))
            backend.next_check_at = now + delay
        if changed:
            state = "reachable" if healthy else f"unreachable ({detail})"
            _log.info("The model server %s is %s.", backend.config.label, state)
            event = BackendHealthChanged(backend.url, backend.config.label, healthy, detail)
            for listener in list(self._listeners):
                listener(event)

    async def check(self, backend: Backend) -> bool:
        try:
            async with self.session.get(backend.http_url + "/", allow_redirects=False) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            self._set_health(backend, False, detail)
            return False
        self._set_health(backend, True, "answering")
        return True

    def mark_failed(self, backend: Backend, detail: str) -> None:
        """A live session found the backend dead: take it out until a check succeeds."""
        self._set_health(backend, False, detail)

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(b) for b in self.backends))

    async def run_checks(self, tick_s: float = 1.0) -> None:
        """Check each backend when due: every 10 s while healthy, with backoff while down."""
        while True:
            now = self._clock.monotonic()
            due = [b for b in self.backends if now >= b.next_check_at and not b.busy]
            if due:
                await asyncio.gather(*(self.check(b) for b in due))
            await asyncio.sleep(tick_s)
