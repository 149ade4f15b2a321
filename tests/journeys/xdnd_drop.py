"""Drop files on an X window the way a file manager does: the XDND protocol, version 5.

Run as its own process with a Python that has python-xlib (Debian's python3-xlib):

    python3 xdnd_drop.py X Y FILE...

It owns XdndSelection, sends XdndEnter and XdndPosition for root position (X, Y) to the
toplevel under it, answers the target's request for ``text/uri-list``, sends XdndDrop and waits
for XdndFinished. Exit status 0: the target accepted and finished the drop; 1: it refused.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from Xlib import X, display  # type: ignore[import-untyped, import-not-found, unused-ignore]
from Xlib.protocol import event  # type: ignore[import-untyped, import-not-found, unused-ignore]

TIMEOUT_S = 10.0
VERSION = 5


def _toplevel_at(disp: Any, x: int, y: int) -> Any:
    """The topmost child of the root that has XdndAware, under (x, y)."""
    root = disp.screen().root
    aware = disp.intern_atom("XdndAware")
    for child in reversed(root.query_tree().children):
        try:
            attrs = child.get_attributes()
            geo = child.get_geometry()
        except Exception:  # windows come and go
            continue
        if attrs.map_state != X.IsViewable:
            continue
        inside = geo.x <= x < geo.x + geo.width and geo.y <= y < geo.y + geo.height
        if inside and child.get_full_property(aware, X.AnyPropertyType) is not None:
            return child
    raise SystemExit(f"No XDND-aware window at {x},{y}.")


def _client(disp: Any, target: Any, kind: str, source: Any, data: list[int]) -> None:
    message = event.ClientMessage(
        window=target,
        client_type=disp.intern_atom(kind),
        data=(32, [source.id, *data, *([0] * (4 - len(data)))]),
    )
    target.send_event(message, event_mask=0)
    disp.flush()


def drop(x: int, y: int, files: list[Path]) -> int:
    disp = display.Display()
    root = disp.screen().root
    source = root.create_window(-10, -10, 1, 1, 0, X.CopyFromParent)
    atom = disp.intern_atom
    uri_list = atom("text/uri-list")
    selection = atom("XdndSelection")
    payload = "".join(f"{p.resolve().as_uri()}\r\n" for p in files).encode()
    source.set_selection_owner(selection, X.CurrentTime)
    target = _toplevel_at(disp, x, y)

    _client(disp, target, "XdndEnter", source, [VERSION << 24, uri_list, 0, 0])
    _client(
        disp,
        target,
        "XdndPosition",
        source,
        [0, (x << 16) | y, X.CurrentTime, atom("XdndActionCopy")],
    )
    accepted: bool | None = None
    dropped = False
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if not disp.pending_events():
            time.sleep(0.01)
            continue
        ev = disp.next_event()
        if ev.type == X.ClientMessage and ev.client_type == atom("XdndStatus"):
            accepted = bool(ev.data[1][1] & 1)
            if not dropped:
                if not accepted:
                    _client(disp, target, "XdndLeave", source, [])
                    return 1
                _client(disp, target, "XdndDrop", source, [0, X.CurrentTime])
                dropped = True
        elif ev.type == X.SelectionRequest:
            requestor = ev.requestor
            prop = ev.property or ev.target
            if ev.target == uri_list:
                requestor.change_property(prop, uri_list, 8, payload)
            else:
                prop = X.NONE
            notify = event.SelectionNotify(
                time=ev.time,
                requestor=requestor,
                selection=ev.selection,
                target=ev.target,
                property=prop,
            )
            requestor.send_event(notify, event_mask=0)
            disp.flush()
        elif ev.type == X.ClientMessage and ev.client_type == atom("XdndFinished"):
            return 0
    raise SystemExit(f"The drop timed out after {TIMEOUT_S:g} s (accepted: {accepted}).")


if __name__ == "__main__":
    sys.exit(drop(int(sys.argv[1]), int(sys.argv[2]), [Path(p) for p in sys.argv[3:]]))
