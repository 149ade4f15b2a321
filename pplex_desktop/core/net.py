"""This machine's addresses on the local network, read from the interfaces (no traffic sent).

The one place that decides which addresses count: the URL and QR code the desktop shows, the
URLs the headless gateway prints and the LAN certificate's subject alternative names all come
from here, so a phone that scans the code is never sent to an address the certificate lacks.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import psutil

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
WILDCARDS = ("0.0.0.0", "::", "")  # listening addresses that mean every interface


class InterfaceAddress(Protocol):
    """What is read of one address of an interface (psutil's snicaddr)."""

    @property
    def family(self) -> int: ...

    @property
    def address(self) -> str: ...


class InterfaceStats(Protocol):
    @property
    def isup(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Interfaces:
    """A snapshot of the network interfaces: their addresses and whether each is up."""

    addresses: Mapping[str, Sequence[InterfaceAddress]]
    stats: Mapping[str, InterfaceStats]


@dataclass(frozen=True, slots=True)
class LanAddress:
    interface: str
    ip: str  # as a URL host needs it, without an IPv6 zone

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version

    def url(self, port: int, *, tls: bool = False) -> str:
        return host_url(self.ip, port, tls=tls)


def host_url(host: str, port: int, *, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def read_interfaces() -> Interfaces | None:
    """The interfaces as the system reports them; None if it will not say."""
    try:
        return Interfaces(psutil.net_if_addrs(), psutil.net_if_stats())
    except OSError:
        return None


def usable_lan_ip(ip: IPAddress) -> bool:
    """Whether another device can type ``ip`` in a URL bar to reach this machine."""
    # Link-local addresses need a zone (fe80::1%wlan0) that no URL bar accepts.
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def lan_addresses(interfaces: Interfaces | None = None) -> list[LanAddress]:
    """Usable addresses of interfaces that are up: IPv4 before IPv6, private networks first
    (a phone on the Wi-Fi reaches a private address; public ones are rare on a desk)."""
    found = read_interfaces() if interfaces is None else interfaces
    if found is None:
        return []
    out: dict[tuple[str, IPAddress], LanAddress] = {}
    for name, addrs in found.addresses.items():
        stat = found.stats.get(name)
        if stat is not None and not stat.isup:
            continue
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(addr.address.split("%", 1)[0])
            except ValueError:
                continue
            if usable_lan_ip(ip):
                out.setdefault((name, ip), LanAddress(name, str(ip)))
    # Interface before address: the first one (the QR code's) stays the same as others come.
    ordered = sorted(out.items(), key=lambda item: (_preference(item[0][1])[:2], *item[0]))
    return [address for _, address in ordered]


def lan_ips(interfaces: Interfaces | None = None) -> list[IPAddress]:
    """The distinct addresses of :func:`lan_addresses`, in its order."""
    ips = (ipaddress.ip_address(a.ip) for a in lan_addresses(interfaces))
    return list(dict.fromkeys(ips))


def sort_lan_ips(ips: Iterable[IPAddress]) -> list[IPAddress]:
    """``ips`` in the order :func:`lan_addresses` uses."""
    return sorted(ips, key=_preference)


def _preference(ip: IPAddress) -> tuple[int, bool, IPAddress]:
    return (ip.version, not ip.is_private, ip)
