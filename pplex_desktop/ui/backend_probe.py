"""Is a model server there? An HTTP GET of / first (never touches the model), then optionally a
real conversation handshake with the default persona and voice (takes the model briefly)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from pplex_desktop.core.errors import PplexError
from pplex_desktop.core.redact import redact_url
from pplex_desktop.core.settings import normalize_backend_url

REACH_TIMEOUT_S = 3.0
HANDSHAKE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    url: str  # normalised when it could be, else as typed
    reachable: bool
    handshake: bool | None  # None: not tried
    message: str  # a sentence for the user

    @property
    def ok(self) -> bool:
        return self.reachable and self.handshake is not False


async def probe_backend(
    url: str,
    *,
    handshake: bool = False,
    persona: str = "",
    voice: str = "",
    reach_timeout_s: float = REACH_TIMEOUT_S,
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> ProbeResult:
    try:
        normalized = normalize_backend_url(url)
    except PplexError as exc:
        return ProbeResult(url, False, None, exc.message)
    shown = redact_url(normalized)
    http_url = normalized.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    timeout = aiohttp.ClientTimeout(total=reach_timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as http,
            http.get(http_url + "/", allow_redirects=False) as response,
        ):
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return ProbeResult(
            normalized,
            False,
            None,
            f"Nothing answers at {shown} ({_reason(exc)}). Start the model server there or "
            "check the address and port.",
        )
    if not handshake:
        return ProbeResult(normalized, True, None, f"A server answers at {shown} (HTTP {status}).")
    # Imported here: the Opus codec is only needed for this test, not for starting the app.
    from pplex_desktop.moshi.client import MoshiSession, SessionOptions

    options = SessionOptions(
        text_prompt=persona or None,
        voice_prompt=voice or None,
        handshake_timeout=handshake_timeout_s,
        open_timeout=reach_timeout_s,
    )
    try:
        session = await MoshiSession.connect(normalized, options)
    except PplexError as exc:
        return ProbeResult(
            normalized,
            True,
            False,
            f"A server answers at {shown}, but a conversation could not start: {exc.message}",
        )
    await session.close()
    return ProbeResult(
        normalized,
        True,
        True,
        f"The model server at {shown} answers and accepted a conversation with the default "
        "persona and voice.",
    )


def _reason(exc: BaseException) -> str:
    """The operating system's words (\"Connection refused\") rather than aiohttp's wrapping."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
