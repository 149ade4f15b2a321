"""core/net.py: one address discovery for the QR code, the printed URLs and the certificate.

The interfaces are the hardware edge, so the mixed cases (down interfaces, link-local, zoned
IPv6, multicast) are given as a snapshot; the real interfaces are read too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from pplex_desktop.core import net
from pplex_desktop.desktop.lan import lan_addresses as shown_addresses
from pplex_desktop.gateway.lan import tls

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Addr:
    family: int
    address: str


@dataclass(frozen=True)
class Stat:
    isup: bool


def _v4(address: str) -> Addr:
    return Addr(socket.AF_INET, address)


def _v6(address: str) -> Addr:
    return Addr(socket.AF_INET6, address)


MIXED = net.Interfaces(
    addresses={
        "lo": [_v4("127.0.0.1"), _v6("::1")],
        "wlan0": [
            _v4("192.168.1.20"),
            _v6("fe80::1%wlan0"),
            _v6("fd00:1::20"),
            Addr(17, "aa:bb:cc:dd:ee:ff"),  # the link layer address
        ],
        "eth0": [_v4("8.8.4.4"), _v4("10.0.0.2")],
        "docker0": [_v4("172.17.0.1")],
        "down0": [_v4("192.168.9.9")],
        "odd": [_v4("169.254.3.4"), _v4("0.0.0.0"), _v6("ff02::1"), _v6("not an address")],
    },
    stats={"lo": Stat(True), "wlan0": Stat(True), "eth0": Stat(True), "down0": Stat(False)},
)


def test_usable_addresses_of_interfaces_that_are_up_in_order() -> None:
    found = net.lan_addresses(MIXED)
    assert [(a.interface, a.ip) for a in found] == [
        ("docker0", "172.17.0.1"),
        ("eth0", "10.0.0.2"),
        ("wlan0", "192.168.1.20"),
        ("eth0", "8.8.4.4"),
        ("wlan0", "fd00:1::20"),
    ]
    assert net.lan_ips(MIXED)[0] == ipaddress.ip_address("172.17.0.1")


def test_the_desktop_shows_the_ipv4_ones_in_the_same_order() -> None:
    assert [a.ip for a in shown_addresses(MIXED)] == [
        "172.17.0.1",
        "10.0.0.2",
        "192.168.1.20",
        "8.8.4.4",
    ]
    assert net.LanAddress("wlan0", "fd00:1::20").url(8443, tls=True) == "https://[fd00:1::20]:8443"


def test_no_interfaces_means_no_addresses() -> None:
    assert net.lan_addresses(net.Interfaces({}, {})) == []


@pytest.mark.parametrize("interfaces", [MIXED, None], ids=["mixed", "this machine"])
def test_the_qr_address_is_among_the_certificate_names(
    interfaces: net.Interfaces | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if interfaces is not None:
        monkeypatch.setattr(net, "read_interfaces", lambda: interfaces)
    shown = shown_addresses()
    info = tls.ensure_local_certificates(tmp_path, now=NOW)
    cert = x509.load_pem_x509_certificate(info.cert_path.read_bytes())
    sans = tls._sans(cert)[1]
    for address in shown:
        assert ipaddress.ip_address(address.ip) in sans, address
    for ip in net.lan_ips():
        assert ip in sans
    if interfaces is not None:
        assert shown, "the snapshot has addresses to show"
        # What the headless gateway prints is the same list.
        assert tls.lan_urls(8443)[: len(shown)] == [a.url(8443, tls=True) for a in shown]
