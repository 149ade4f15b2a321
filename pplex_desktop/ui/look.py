"""The app's icon, palette and style sheet; light or dark as the system says."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication


def resource(*parts: str) -> Traversable:
    """A file shipped inside the package (works from the repo and from an install alike)."""
    return resources.files("pplex_desktop.resources").joinpath(*parts)


def icon_pixmap(size: int) -> QPixmap:
    """The app's mark rendered sharp at ``size`` pixels (no scaling of a bitmap)."""
    renderer = QSvgRenderer(QByteArray(resource("icons", "pplex.svg").read_bytes()))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        renderer.render(painter)
    finally:
        painter.end()
    return pixmap


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(icon_pixmap(size))
    return icon


def style_sheet() -> str:
    return resource("styles", "app.qss").read_text(encoding="utf-8")


def is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def dark_palette() -> QPalette:
    palette = QPalette()
    window, base, text = QColor("#202226"), QColor("#17181b"), QColor("#e6e6e6")
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor("#26282d"),
        QPalette.ColorRole.ToolTipBase: QColor("#2c2f35"),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: QColor("#8d9199"),
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor("#2c2f35"),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor("#ff6b6b"),
        QPalette.ColorRole.Link: QColor("#6ab0ff"),
        QPalette.ColorRole.Highlight: QColor("#3f6fd8"),
        QPalette.ColorRole.HighlightedText: QColor("#ffffff"),
        QPalette.ColorRole.Mid: QColor("#3a3d44"),
        QPalette.ColorRole.Dark: QColor("#111214"),
        QPalette.ColorRole.Light: QColor("#3a3d44"),
    }
    for role, color in roles.items():
        palette.setColor(role, color)
    disabled = QColor("#6b6f77")
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return palette


def light_palette(app: QApplication) -> QPalette:
    palette = app.style().standardPalette()
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor("#eef0f3"))
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#3f6fd8"))
    return palette


def use_scheme(app: QApplication, *, dark: bool) -> None:
    app.setPalette(dark_palette() if dark else light_palette(app))
    # Re-applying the sheet makes palette(...) references pick up the new colours.
    app.setStyleSheet(style_sheet())


def apply_look(app: QApplication) -> None:
    """Fusion everywhere (consistent on every desktop), palette from the system scheme."""
    app.setStyle("Fusion")
    app.setWindowIcon(app_icon())
    use_scheme(app, dark=is_dark())
    QGuiApplication.styleHints().colorSchemeChanged.connect(
        lambda scheme: use_scheme(app, dark=scheme == Qt.ColorScheme.Dark)
    )
