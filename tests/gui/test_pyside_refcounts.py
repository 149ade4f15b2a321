"""PySide6 6.12.0 (abi3) returns None and True without a reference on CPython 3.11; a few
thousand calls later the interpreter aborts. pyproject.toml excludes it; this keeps it out."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    ping = Signal()


def test_qt_calls_do_not_lose_references_to_none_or_true() -> None:
    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(200):
        probe.setObjectName("probe")
        probe.ping.emit()
    # Other threads may move a few references meanwhile; the bug loses one per call.
    assert none_before - sys.getrefcount(None) < 50
    assert true_before - sys.getrefcount(True) < 50
