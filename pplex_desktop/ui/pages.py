"""The pages of the main window, registered rather than hard-wired.

Later panels (live talk, offline files) plug in with one ``PageSpec``: the window calls its
factory with the DesktopContext (bridge, gateway controller, owner key, gateway URL...).
A page widget may define ``page_shown()``, ``page_hidden()`` and ``shutdown()``; the window
calls them when the user switches pages and when the app quits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from pplex_desktop.ui.context import DesktopContext

PageFactory = Callable[["DesktopContext"], QWidget]


@dataclass(frozen=True, slots=True)
class PageSpec:
    key: str  # stable id, e.g. "live"; also used to remember the last page shown
    title: str
    factory: PageFactory
    order: int = 100  # lower comes first: server 10, keys 20, activity 30
    tooltip: str = ""


class PageRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, PageSpec] = {}

    def register(self, spec: PageSpec) -> None:
        if spec.key in self._specs:
            raise ValueError(f"A page with the key {spec.key!r} is already registered.")
        self._specs[spec.key] = spec

    def specs(self) -> list[PageSpec]:
        return sorted(self._specs.values(), key=lambda s: (s.order, s.title))

    def __contains__(self, key: object) -> bool:
        return key in self._specs


def call_hook(widget: QWidget, name: str) -> None:
    hook = getattr(widget, name, None)
    if callable(hook):
        hook()
