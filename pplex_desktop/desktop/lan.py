"""The addresses the desktop shows (and puts in the QR code) for devices on the network.

They come from core/net.py, the same discovery that names the LAN certificate's addresses.
"""

from __future__ import annotations

from pplex_desktop.core import net
from pplex_desktop.core.net import WILDCARDS, LanAddress

__all__ = ["WILDCARDS", "LanAddress", "lan_addresses"]


def lan_addresses(interfaces: net.Interfaces | None = None) -> list[LanAddress]:
    """Usable IPv4 addresses of interfaces that are up, private networks first.

    IPv4 only: a phone scanning the code may be on an IPv4-only Wi-Fi.
    """
    return [a for a in net.lan_addresses(interfaces) if a.version == 4]
