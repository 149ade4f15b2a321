"""LAN addresses come from the interfaces; the QR code image is segno's matrix, module for
module, dark on white with the quiet zone scanners need."""

from __future__ import annotations

import ipaddress

import segno
from PySide6.QtGui import QColor

from pplex_desktop.desktop.lan import LanAddress, lan_addresses
from pplex_desktop.ui.server.qr import QUIET_ZONE, qr_image, qr_matrix


def test_lan_addresses_are_up_non_loopback_ipv4() -> None:
    for found in lan_addresses():
        ip = ipaddress.IPv4Address(found.ip)
        assert not ip.is_loopback and not ip.is_link_local
    assert LanAddress("eth0", "192.168.1.20").url(8000) == "http://192.168.1.20:8000"
    assert LanAddress("eth0", "10.0.0.2").url(8443, tls=True) == "https://10.0.0.2:8443"


def test_the_qr_image_is_the_matrix(qtbot: object) -> None:
    text = "http://192.168.1.20:8000"
    matrix = qr_matrix(text)
    reference = segno.make(text, error="m", micro=False)
    assert len(matrix) == reference.symbol_size(border=0)[0]
    module = 4
    image = qr_image(text, module_px=module)
    side = (len(matrix) + 2 * QUIET_ZONE) * module
    assert (image.width(), image.height()) == (side, side)
    black, white = QColor("black"), QColor("white")
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            centre = ((x + QUIET_ZONE) * module + 1, (y + QUIET_ZONE) * module + 1)
            assert image.pixelColor(*centre) == (black if dark else white)
    assert image.pixelColor(1, 1) == white  # the quiet zone
    assert qr_matrix("http://10.0.0.2:8000") != matrix
