"""Which Host names the gateway answers to: its own, and nothing a stranger's DNS points here.

A page on evil.example whose name an attacker re-points at 127.0.0.1 (DNS rebinding) sends
``Host: evil.example`` and ``Origin: http://evil.example``: same-origin as far as the browser
and the origin check can tell. Refusing every Host the gateway does not serve closes that, and
makes the Host safe to build URLs from (job ``Location`` and ``url``).

Served names: loopback (localhost, 127.0.0.1, [::1]) always; this machine's host name, mDNS
name and LAN addresses when it listens beyond loopback; the names of its TLS certificate; and
``public_hosts`` from the settings (a leading dot matches every subdomain). Ports are not
compared: a name the gateway serves is its own on any port a proxy maps to it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from pplex_desktop.core.hostnames import is_loopback, normalize_name, split_host_header
from pplex_desktop.core.settings import Settings
from pplex_desktop.gateway.errors import json_error
from pplex_desktop.gateway.lan.tls import LAN_TLS, local_names

# A miss re-reads the interfaces (a laptop changes networks), but at most this often, so a
# flood of foreign Host headers costs one interface scan per interval, not one per request.
REFRESH_S = 10.0
_WILDCARDS = ("0.0.0.0", "::", "")


class AllowedHosts:
    def __init__(
        self,
        discover: Callable[[], Iterable[str]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._discover = discover
        self._monotonic = monotonic
        self._refresh_s = refresh_s
        self._names: frozenset[str] = frozenset()
        self._suffixes: tuple[str, ...] = ()
        self._refreshed_at: float | None = None

    def _refresh(self) -> None:
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in self._discover():
            if entry.startswith("."):
                normal = normalize_name(entry[1:])
                if normal is not None:
                    suffixes.append("." + normal)
                    names.add(normal)
            else:
                normal = normalize_name(entry)
                if normal is not None:
                    names.add(normal)
        self._names, self._suffixes = frozenset(names), tuple(suffixes)
        self._refreshed_at = self._monotonic()

    def forget(self) -> None:
        """Read the names again at the next request (the settings changed)."""
        self._names, self._suffixes, self._refreshed_at = frozenset(), (), None

    def _known(self, name: str) -> bool:
        return name in self._names or name.endswith(self._suffixes)

    def allows(self, name: str) -> bool:
        """``name`` as normalize_name returns it."""
        if is_loopback(name) or self._known(name):
            return True
        now = self._monotonic()
        if self._refreshed_at is None or now - self._refreshed_at >= self._refresh_s:
            self._refresh()
            return self._known(name)
        return False


ALLOWED_HOSTS = web.AppKey("pplex_allowed_hosts", AllowedHosts)
VALIDATED_HOST = web.RequestKey("pplex_validated_host", str)


def gateway_hosts(current: Callable[[], Settings], app: web.Application) -> AllowedHosts:
    """The names a gateway with ``current()`` settings serves (read afresh at each refresh, so
    a reload's public_hosts count); its LAN certificate is read when needed."""

    def discover() -> list[str]:
        settings = current()
        names = list(settings.public_hosts)
        listening = [settings.host] + ([settings.lan_host] if settings.serve_lan else [])
        for host in listening:
            if host in _WILDCARDS:
                found = local_names()
                names += [*found.dns, *(str(ip) for ip in found.ips)]
            else:
                names.append(host)
        tls = app.get(LAN_TLS)
        if tls is not None:
            names += [*tls.names.dns, *(str(ip) for ip in tls.names.ips)]
        return names

    return AllowedHosts(discover)


def _shown(value: str) -> str:
    """The refused name, quoted back only in characters that are safe anywhere."""
    safe = "".join(c for c in value[:100] if c.isascii() and (c.isalnum() or c in ".-_:[]"))
    return safe or "(unprintable)"


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    value = request.headers.get(hdrs.HOST)
    if value is None:
        # HTTP/1.0 without Host: no browser sends that, so it cannot be a rebinding attack.
        return await handler(request)
    parsed = split_host_header(value)
    if parsed is None:
        return json_error(
            400,
            "invalid_host",
            "The Host header is not a host name or address with an optional port.",
        )
    name, port = parsed
    if not request.app[ALLOWED_HOSTS].allows(name):
        return json_error(
            421,
            "unknown_host",
            f"This gateway does not answer to the name {_shown(value)}. Use the address the "
            "gateway shows, or, if a proxy or a DNS name of yours points here, add the name "
            "to public_hosts in the gateway's settings.",
        )
    shown = f"[{name}]" if ":" in name else name
    request[VALIDATED_HOST] = shown if port is None else f"{shown}:{port}"
    return await handler(request)


def base_url(request: web.Request) -> str:
    """``scheme://host[:port]`` of this request, from the validated Host only."""
    scheme = "https" if request.secure else "http"
    host = request.get(VALIDATED_HOST)
    if host is None:  # no Host header: the address the client reached
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not sockname:
            return f"{scheme}://127.0.0.1"
        address = ipaddress.ip_address(sockname[0])
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"{scheme}://{shown}:{sockname[1]}"
    return f"{scheme}://{host}"
