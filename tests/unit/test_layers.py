"""ARCHITECTURE.md's import rules, checked on the source: imports point down, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pplex_desktop"
ORDER = ["app", "ui", "audio", "gateway", "backend", "moshi", "core"]
# gateway and audio sit side by side: neither may know the other.
FORBIDDEN_PAIRS = {("gateway", "audio"), ("audio", "gateway")}
# Third-party modules that may only appear in one place.
CONFINED = {
    "PySide6": {"ui", "app"},
    "qasync": {"ui", "app"},
    "sounddevice": {"audio"},
    "sphn": {"moshi/codec.py"},
    "aiohttp": {"backend", "gateway", "ui", "app"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
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


def test_the_rules_see_every_layer() -> None:
    present = {_layer(p) for p in SOURCES}
    assert {"core", "moshi", "backend", "gateway"} <= present
