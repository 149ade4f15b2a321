"""The talk page's files, read once when the app is built and served from memory with an ETag.

The files ship inside the package and change only with the app, so reading them again for
every request only costs disk work, and would let a file edited (or half-written by an
upgrade) under a running gateway reach browsers mid-session. The URLs carry no version, so
browsers must ask again each time (``no-cache``); the strong ETag, a hash of the bytes, makes
that question cheap: an unchanged file answers 304 with no body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable

# Long enough that a client cannot make the parsing costly; real lists hold a few tags.
_MAX_IF_NONE_MATCH = 4096


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str  # quoted, as it goes in the header: "…"


class StaticFiles:
    """A fixed set of named files, read into memory at construction."""

    def __init__(self, root: Traversable, types: Mapping[str, str]) -> None:
        files = {}
        for name, content_type in types.items():
            body = (root / name).read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:32]
            files[name] = StaticFile(body, content_type, f'"{digest}"')
        self._files = files

    def get(self, name: str) -> StaticFile | None:
        return self._files.get(name)


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header matches ``etag`` (RFC 9110 §13.1.2, weak comparison)."""
    if not if_none_match or len(if_none_match) > _MAX_IF_NONE_MATCH:
        return False
    if if_none_match.strip() == "*":
        return True
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False
