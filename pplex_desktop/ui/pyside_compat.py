"""Keep PySide6 builds that lose references to None, True and False from crashing the app.

PySide6 6.12's abi3 wheels return None from void methods (``setEnabled``, ``update``,
``QSettings.setValue``…) and True from ``Signal.emit`` without taking a reference, as if those
objects were immortal, which they are only from CPython 3.12 on. On 3.11 every such call gives
away a reference the interpreter never handed out: after some thousands of calls (minutes of
a live conversation with its meters) the count reaches zero and the interpreter aborts with
"deallocating None" or "deallocating True or False", at run time or at exit.

``protect()`` measures whether this PySide6 does that and, only then, makes the three objects
effectively immortal the way CPython 3.12 does: a reference count so high that no number of
lost references can bring it to zero. Nothing else changes.
"""

from __future__ import annotations

import ctypes
import logging
import sys

_log = logging.getLogger(__name__)
PROBE_CALLS = 32
# CPython 3.12 uses about 2**32 for immortal objects; 2**60 leaves room for both directions.
IMMORTAL_REFCOUNT = 1 << 60


def loses_references() -> bool:
    """Whether void calls and signal emissions drop references to None or True."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("pplex-probe")
        probe.ping.emit()
    none_lost = none_before - sys.getrefcount(None)
    true_lost = true_before - sys.getrefcount(True)
    # Other threads may take or drop a few references meanwhile; a lost one per call is the bug.
    return none_lost >= PROBE_CALLS // 2 or true_lost >= PROBE_CALLS // 2


def protect() -> bool:
    """Apply the protection if this interpreter and PySide6 need it; True if applied."""
    if sys.getrefcount(None) >= IMMORTAL_REFCOUNT // 2:
        return True  # protected already
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False  # None, True and False are immortal there already
    if hasattr(sys, "gettotalrefcount"):
        return False  # a debug build: its object header is laid out differently
    if not loses_references():
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every object on CPython 3.11 (non-debug builds).
        ctypes.c_ssize_t.from_address(id(singleton)).value = IMMORTAL_REFCOUNT
    _log.info(
        "This PySide6 build drops references to None and True on Python %d.%d; they are now "
        "kept alive for good so the app cannot crash on it.",
        *sys.version_info[:2],
    )
    return True
