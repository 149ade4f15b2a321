"""Level meters: RMS and peak per reading window, and their dBFS display."""

from __future__ import annotations

import numpy as np
import pytest

from pplex_desktop.audio.meters import LevelMeter, to_dbfs
from tests.signals import tone


def test_rms_and_peak_cover_every_block_since_the_last_reading() -> None:
    meter = LevelMeter()
    meter.add(tone(440, 0.1, amplitude=0.5))
    meter.add(np.zeros(2_400, dtype=np.float32))
    rms, peak = meter.read()
    assert rms == pytest.approx(0.5 / np.sqrt(2) / np.sqrt(2), rel=0.01)
    assert peak == pytest.approx(0.5, abs=1e-3)
    assert meter.read() == (0.0, 0.0), "each reading starts a new window"


def test_dbfs() -> None:
    assert to_dbfs(1.0) == 0.0
    assert to_dbfs(0.5) == pytest.approx(-6.02, abs=0.01)
    assert to_dbfs(0.0) == -90.0
    assert to_dbfs(1e-9) == -90.0
