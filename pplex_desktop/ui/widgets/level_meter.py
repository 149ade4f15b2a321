"""A horizontal audio level meter, and the timer that repaints a group of them.

Levels arrive about 12.5 times a second per direction. ``set_levels`` only stores them; the
shared MeterClock repaints at a fixed rate while something moves and stops when all meters
are still, so a burst of events costs one repaint and a silent page costs none. Between reports
the bar falls smoothly instead of jumping, which reads as motion rather than flicker.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from pplex_desktop.audio.meters import to_dbfs

FLOOR_DB = -60.0
REPAINT_MS = 50
FALL_DB_PER_S = 24.0  # how fast the bar sinks when the sound stops
PEAK_HOLD_S = 1.0
_GREEN, _AMBER, _RED = QColor("#2e9d57"), QColor("#e6a23c"), QColor("#d64545")


class LevelMeter(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(120)
        self._target_db = FLOOR_DB  # the latest report
        self._shown_db = FLOOR_DB  # what the bar shows
        self._peak_db = FLOOR_DB
        self._peak_age_s = 0.0
        self.reports = 0  # how many levels arrived (tests read it)

    def sizeHint(self) -> QSize:
        return QSize(240, 14)

    @property
    def level_db(self) -> float:
        """The RMS level of the latest report, in dBFS (``FLOOR_DB`` for silence)."""
        return self._target_db

    @property
    def shown_db(self) -> float:
        return self._shown_db

    def set_levels(self, rms: float, peak: float) -> None:
        self._target_db = max(to_dbfs(rms), FLOOR_DB)
        peak_db = max(to_dbfs(peak), FLOOR_DB)
        if peak_db >= self._peak_db:
            self._peak_db, self._peak_age_s = peak_db, 0.0
        self.reports += 1

    def reset(self) -> None:
        self._target_db = self._shown_db = self._peak_db = FLOOR_DB
        self.update()

    def advance(self, seconds: float) -> bool:
        """Move the bar toward the latest report; True while it still moves."""
        before = (self._shown_db, self._peak_db)
        if self._target_db >= self._shown_db:
            self._shown_db = self._target_db  # rise at once: a voice must show when it starts
        else:
            self._shown_db = max(self._target_db, self._shown_db - FALL_DB_PER_S * seconds)
        self._peak_age_s += seconds
        if self._peak_age_s > PEAK_HOLD_S:
            self._peak_db = max(self._shown_db, self._peak_db - FALL_DB_PER_S * seconds)
        moved = (self._shown_db, self._peak_db) != before
        if moved:
            self.update()
        return moved or self._shown_db > FLOOR_DB

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        palette = self.palette()
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(frame, 4, 4)
        inner = frame.adjusted(2, 2, -2, -2)
        width = inner.width() * _fraction(self._shown_db)
        if width > 0.5:
            gradient = QLinearGradient(inner.left(), 0, inner.right(), 0)
            gradient.setColorAt(0.0, _GREEN)
            gradient.setColorAt(_fraction(-12.0), _GREEN)
            gradient.setColorAt(_fraction(-6.0), _AMBER)
            gradient.setColorAt(1.0, _RED)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(gradient)
            painter.drawRoundedRect(QRectF(inner.left(), inner.top(), width, inner.height()), 3, 3)
        if self._peak_db > FLOOR_DB:
            x = inner.left() + inner.width() * _fraction(self._peak_db)
            painter.setPen(palette.color(QPalette.ColorRole.WindowText))
            painter.drawLine(int(x), int(inner.top()), int(x), int(inner.bottom()))
        painter.end()


def _fraction(db: float) -> float:
    return min(max((db - FLOOR_DB) / -FLOOR_DB, 0.0), 1.0)


class MeterClock(QObject):
    """One timer for a group of meters: runs while any moves, sleeps when all are still."""

    def __init__(self, meters: list[LevelMeter], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._meters = meters
        self.timer = QTimer(self)
        self.timer.setInterval(REPAINT_MS)
        self.timer.timeout.connect(self._tick)
        self.repaints = 0

    def kick(self) -> None:
        """New levels arrived: make sure the timer runs (cheap if it already does)."""
        if not self.timer.isActive():
            self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        self.repaints += 1
        moving = [m.advance(REPAINT_MS / 1000.0) for m in self._meters]
        if not any(moving):
            self.timer.stop()
