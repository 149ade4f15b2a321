"""Is a model server there? An HTTP GET of / first (never touches the model), then optionally a
real conversation handshake with the default persona and voice (takes the model briefly)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

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
            normalized, False, None, unreachable_sentence(shown, exc, reach_timeout_s)
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


def unreachable_sentence(shown: str, exc: BaseException, timeout_s: float) -> str:
    """Why nothing answered, in the user's words: never aiohttp's or the socket's wording."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        host = urlsplit(shown).hostname or shown
        return f"The name {host} is not known on this network. Check the server's address."
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return (
            f"{shown} did not answer within {timeout_s:g} s. Check the address, and that the "
            "model server runs and a firewall lets it through."
        )
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
        return f"Nothing answers at {shown}. Is the model server running?"
    return f"{shown} cannot be reached. Check the address and that the model server runs."
