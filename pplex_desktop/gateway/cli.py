"""``pplex-gateway``: the headless gateway (not built yet; see the README's status)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    print("pplex-gateway is not yet built.", file=sys.stderr)
    return 2
