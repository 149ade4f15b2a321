"""The voice prompts PersonaPlex ships, as file names inside its voice directory."""

from __future__ import annotations

DEFAULT_VOICES: tuple[str, ...] = tuple(
    f"{family}{index}.pt"
    for family, count in (("NATF", 4), ("NATM", 4), ("VARF", 5), ("VARM", 5))
    for index in range(count)
)
