"""``pplex-desktop``: the Qt app (not built yet; see the README's status)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    print("pplex-desktop is not yet built; run pplex-sim for the demo backend.", file=sys.stderr)
    return 2
