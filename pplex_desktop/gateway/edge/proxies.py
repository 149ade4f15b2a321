"""The client's address behind a reverse proxy, for limits, throttles and logs.

Forwarded (RFC 7239) and X-Forwarded-For are believed only when the connection comes from an
address in ``trusted_proxies``: from anyone else they are whatever the client wishes to be
called, and would let one address dodge its throttle by inventing a new name each try. Along a
chain of proxies the client is the right-most address that is not itself a trusted proxy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler

from pplex_desktop.gateway.context import CTX

CLIENT = web.RequestKey("pplex_client", str)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: web.BaseRequest) -> str:
    """The address limits and logs book a request under."""
    return request.get(CLIENT) or request.remote or "unknown"


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None  # "unknown", an obfuscated name: nothing to book a limit under


def _trusted(address: object, networks: tuple[Network, ...]) -> bool:
    if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any((mapped or address) in net for net in networks)


def _hops(request: web.BaseRequest) -> Iterator[str]:
    """The claimed addresses, nearest proxy last (Forwarded wins over X-Forwarded-For)."""
    forwarded = request.headers.getall("Forwarded", [])
    if forwarded:
        for element in ",".join(forwarded).split(","):
            for pair in element.split(";"):
                name, _, value = pair.partition("=")
                if name.strip().lower() == "for":
                    yield value
        return
    for header in request.headers.getall("X-Forwarded-For", []):
        yield from header.split(",")


def forwarded_client(request: web.BaseRequest, networks: tuple[Network, ...]) -> str | None:
    """The client a trusted proxy names, or None when the peer is no trusted proxy."""
    peer = _address(request.remote or "")
    if not networks or not _trusted(peer, networks):
        return None
    hops = [_address(h) for h in _hops(request)]
    for hop in reversed(hops):
        if hop is None:
            return None  # an entry we cannot read: do not guess past it
        if not _trusted(hop, networks):
            return str(hop)
    return str(hops[0]) if hops else None


@web.middleware
async def proxy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    networks = _networks(request.app[CTX].settings.trusted_proxies)
    if networks:
        client = forwarded_client(request, networks)
        if client is not None:
            request[CLIENT] = client
    return await handler(request)
