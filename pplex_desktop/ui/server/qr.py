"""QR codes for the LAN URL, drawn from segno's module matrix (no image files involved)."""

from __future__ import annotations

import segno
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter

QUIET_ZONE = 4  # modules of light border the QR specification asks for


def qr_matrix(text: str) -> list[list[bool]]:
    """The dark/light modules of ``text``'s QR code, without the quiet zone."""
    code = segno.make(text, error="m", micro=False)
    return [[bool(cell) for cell in row] for row in code.matrix]


def qr_image(text: str, module_px: int = 6) -> QImage:
    """Dark on white whatever the palette: scanners need that contrast."""
    matrix = qr_matrix(text)
    size = (len(matrix) + 2 * QUIET_ZONE) * module_px
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(QColor(Qt.GlobalColor.white))
    painter = QPainter(image)
    try:
        dark = QColor(Qt.GlobalColor.black)
        for y, row in enumerate(matrix):
            for x, cell in enumerate(row):
                if cell:
                    painter.fillRect(
                        (x + QUIET_ZONE) * module_px,
                        (y + QUIET_ZONE) * module_px,
                        module_px,
                        module_px,
                        dark,
                    )
    finally:
        painter.end()
    return image
