"""ARCHITECTURE.md's import rules, checked on the source: imports point down, never up.

ui -> desktop -> gateway | audio -> sim -> moshi -> core; gateway and audio never know each
other; third-party libraries stay in the one place that owns them; the UI reaches the gateway
only through ``GatewayServer``'s small API (and its events), never its internals.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pplex_desktop"
ORDER = ["app", "ui", "desktop", "audio", "gateway", "sim", "moshi", "core"]
# gateway and audio sit side by side: neither may know the other.
FORBIDDEN_PAIRS = {("gateway", "audio"), ("audio", "gateway")}
# Third-party modules that may only appear in these layers (or files).
CONFINED = {
    "PySide6": {"ui", "app"},
    "qasync": {"ui", "app"},
    "sounddevice": {"audio"},
    "sphn": {"moshi/codec.py"},
    "aiohttp": {"sim", "gateway", "desktop", "ui", "app", "moshi/client.py"},
    # One WebSocket client stack in the package: aiohttp's (moshi/client.py, the Talk page's
    # client, included). websockets is only the tests' independent client.
    "websockets": set(),
}
# What the UI and the desktop logic may import from the gateway: its public face.
GATEWAY_API = {
    "pplex_desktop.gateway.server",
    "pplex_desktop.gateway.events",
    "pplex_desktop.gateway.lan.tls",  # certificate facts shown to the user, checks of a pair
    "pplex_desktop.gateway.lan.pairing",
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[str]:
    """Absolute names of everything a file imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module(path)
    package = here if path.name == "__init__.py" else here[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]
    return names


SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_the_layers(path: Path) -> None:
    layer = _layer(path)
    rel = str(path.relative_to(PACKAGE))
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "pplex_desktop" and name.count(".") >= 1:
            target = name.split(".")[1]
            if target not in ORDER or layer not in ORDER:
                continue
            assert (layer, target) not in FORBIDDEN_PAIRS, f"{rel} imports {name}"
            assert ORDER.index(target) >= ORDER.index(layer), f"{rel} imports upward: {name}"
        if top in CONFINED:
            allowed = CONFINED[top]
            assert layer in allowed or rel in allowed, f"{rel} may not import {top}"


def _gateway_modules(path: Path) -> set[str]:
    """The gateway modules a file imports (a name imported from a module counts as it)."""
    found = set()
    for name in _imports(path):
        if not name.startswith("pplex_desktop.gateway"):
            continue
        parts = name.split(".")
        for cut in range(len(parts), 2, -1):
            candidate = PACKAGE.parent / Path(*parts[:cut])
            if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
                found.add(".".join(parts[:cut]))
                break
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if _layer(p) in ("ui", "desktop", "app")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_ui_reaches_the_gateway_only_through_its_api(path: Path) -> None:
    rel = str(path.relative_to(PACKAGE))
    for module in _gateway_modules(path):
        assert module in GATEWAY_API, f"{rel} reaches into the gateway: {module}"
    assert ".runner.ctx" not in path.read_text(), f"{rel} reaches into the gateway's context"


def test_relative_imports_are_seen() -> None:
    sample = PACKAGE / "ui" / "talk" / "live_panel.py"
    assert sample.exists()
    tree_names = _imports(sample)
    assert any(n.startswith("pplex_desktop.") for n in tree_names)


def test_the_package_imports_no_second_websocket_stack() -> None:
    importers = [
        str(p.relative_to(PACKAGE))
        for p in SOURCES
        if any(n.split(".")[0] == "websockets" for n in _imports(p))
    ]
    assert importers == []


def test_the_rules_see_every_layer() -> None:
    present = {_layer(p) for p in SOURCES}
    assert set(ORDER) - {"app"} <= present
    assert "app" in present
