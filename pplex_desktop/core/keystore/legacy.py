"""Import of the original gateway's api_keys.json, so its clients keep working.

The original gateway read its keys from a JSON file in one of three shapes (an object of key
to details or name, a list of objects with a "key", or {"keys": [...]}). Imported keys are
stored as digests like every other; keys not in this gateway's format become "legacy" keys,
tagged with a random prefix, and the short or guessable ones are named in a warning.
"""

from __future__ import annotations

import json
import math
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pplex_desktop.core import keys
from pplex_desktop.core.db import Database
from pplex_desktop.core.errors import ValidationError
from pplex_desktop.core.keystore.records import KIND_LEGACY, KIND_USER, MAX_RPM, clean_name

LEGACY_PREFIX = "legacy-"
# Legacy keys below this estimate (length x log2 of the character classes used) are flagged:
# 80 bits is out of reach of online guessing even from many addresses, and a random 16-character
# letters-and-digits key passes it.
WEAK_BELOW_BITS = 80


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int
    skipped: int
    weak: tuple[str, ...] = ()  # names of imported keys that are short or easy to guess


def key_strength_bits(secret: str) -> float:
    """A generous estimate of a key's entropy: length x log2 of the character classes used."""
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
    size = sum(len(c) for c in classes if any(ch in c for ch in secret))
    if any(not any(ch in c for c in classes) for ch in secret):
        size += 33  # punctuation and the rest
    return len(secret) * math.log2(max(size, 2))


def weak_keys_notice(names: tuple[str, ...]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:5]) + (" and more" if len(names) > 5 else "")
    return (
        f"Warning: {len(names)} imported legacy key(s) are short or easy to guess ({shown}). "
        "Make new keys for those clients in this gateway and revoke the old ones."
    )


def _legacy_prefix() -> str:
    # Random, not taken from the key or its digest: a tag derived from a short key's hash would
    # let whoever sees it (a screenshot of the keys panel) test guesses offline.
    return LEGACY_PREFIX + secrets.token_hex(2)


def read_legacy_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The (key, details) pairs of an api_keys.json, or a ValidationError sentence."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{path.name} cannot be read as JSON: {exc}.") from None
    entries = legacy_entries(data)
    if entries is None:
        raise ValidationError(
            f"{path.name} is not in a known api_keys.json format: expected an object of "
            "key to details, a list of objects with a 'key', or {'keys': [...]}."
        )
    return entries


def import_entries(
    db: Database,
    entries: list[tuple[str, dict[str, Any]]],
    *,
    now: float,
    default_rpm: int,
    default_max_sessions: int,
) -> ImportResult:
    """Add the keys not already known, in one transaction."""
    imported = skipped = 0
    weak: list[str] = []
    with db.transaction() as conn:
        for secret, details in entries:
            digest = keys.digest(secret)
            if conn.execute("SELECT 1 FROM api_keys WHERE digest = ?", (digest,)).fetchone():
                skipped += 1
                continue
            name = str(details.get("name") or details.get("owner") or "imported key")[:100]
            created = details.get("created_at") or details.get("created")
            created_at = float(created) if isinstance(created, (int, float)) else now
            rpm = details.get("rpm") or details.get("rate_limit") or default_rpm
            well_formed = keys.is_well_formed(secret)
            kind = KIND_USER if well_formed else KIND_LEGACY
            revoked = details.get("active") is False or details.get("revoked") is True
            conn.execute(
                "INSERT INTO api_keys (name, prefix, digest, kind, created_at, revoked_at, rpm,"
                " max_sessions) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    clean_name(name),
                    keys.display_prefix(secret) if well_formed else _legacy_prefix(),
                    digest,
                    kind,
                    created_at,
                    now if revoked else None,
                    int(rpm) if isinstance(rpm, int) and 0 < rpm <= MAX_RPM else default_rpm,
                    default_max_sessions,
                ),
            )
            imported += 1
            if not well_formed and key_strength_bits(secret) < WEAK_BELOW_BITS:
                weak.append(clean_name(name))
    return ImportResult(imported, skipped, tuple(weak))


def legacy_entries(data: object) -> list[tuple[str, dict[str, Any]]] | None:
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(data, dict) and isinstance(data.get("keys"), list):
        data = data["keys"]
    if isinstance(data, list):
        for entry in data:
            if not isinstance(entry, dict):
                return None
            secret = entry.get("key") or entry.get("api_key")
            if not isinstance(secret, str) or not secret:
                return None
            items.append((secret, entry))
        return items
    if isinstance(data, dict):
        for secret, value in data.items():
            details = {"name": value} if isinstance(value, str) else value
            if not isinstance(details, dict):
                return None
            items.append((secret, details))
        return items
    return None
