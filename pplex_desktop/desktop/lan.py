"""This machine's addresses on the local network, read from the interfaces (no traffic sent)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import psutil

WILDCARDS = ("0.0.0.0", "::", "")  # listening addresses that mean every interface


@dataclass(frozen=True, slots=True)
class LanAddress:
    interface: str
    ip: str

    def url(self, port: int, *, tls: bool = False) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{'https' if tls else 'http'}://{host}:{port}"


def lan_addresses() -> list[LanAddress]:
    """Non-loopback IPv4 addresses of interfaces that are up, private networks first."""
    try:
        stats = psutil.net_if_stats()
        found = psutil.net_if_addrs()
    except OSError:
        return []
    out: list[LanAddress] = []
    for name, addrs in found.items():
        stat = stats.get(name)
        if stat is not None and not stat.isup:
            continue
        for addr in addrs:
            if addr.family != socket.AF_INET:
                continue
            ip = ipaddress.IPv4Address(addr.address)
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
                continue
            out.append(LanAddress(name, addr.address))
    # A phone on the Wi-Fi reaches a private address; public ones (rare on a desk) come later.
    out.sort(key=lambda a: (not ipaddress.IPv4Address(a.ip).is_private, a.interface, a.ip))
    return out
