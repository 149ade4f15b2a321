"""PySide6 6.12 on CPython 3.11 gives away a reference to None per void call and to True per
signal emission; the app protects itself at start. Without the protection this script aborts
("deallocating None") long before its end; with it, it lives."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from PySide6.QtCore import QObject, Signal
from pplex_desktop.ui.pyside_compat import protect

class Chatty(QObject):
    ping = Signal()

# More calls than there are references to give away, counted before protect() raises them.
calls = max(sys.getrefcount(None), sys.getrefcount(True)) + 1_000
protect()
chatty = Chatty()
for _ in range(calls):
    chatty.setObjectName("x")
    chatty.ping.emit()
print("alive")
"""


def test_many_void_calls_and_emissions_do_not_abort_the_interpreter() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == "alive"
