"""What an API key is: its record, its states, and the checks its fields get.

No SQL here beyond reading a row: the store (store.py) owns the queries.
"""

from __future__ import annotations

import math
import sqlite3
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pplex_desktop.core.errors import AuthError, ValidationError

KIND_USER = "user"
KIND_OWNER = "owner"  # the desktop app's own key, replaced at every start
KIND_PAIRED = "paired"  # made by "Pair a device"
KIND_LEGACY = "legacy"  # imported from the original gateway's api_keys.json
KINDS = frozenset({KIND_USER, KIND_OWNER, KIND_PAIRED, KIND_LEGACY})
MAX_RPM = 100_000
MAX_SESSIONS = 100


class KeyState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    kind: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    expires_at: float | None
    rpm: int
    max_sessions: int
    requests: int
    audio_in_s: float
    audio_out_s: float
    can_manage_voices: bool = False

    def state(self, now: float) -> KeyState:
        if self.revoked_at is not None:
            return KeyState.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyState.EXPIRED
        return KeyState.ACTIVE

    def to_public(self, now: float) -> dict[str, Any]:
        """Everything about the key except the key itself."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "kind": self.kind,
            "state": self.state(now).value,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "expires_at": self.expires_at,
            "rpm": self.rpm,
            "max_sessions": self.max_sessions,
            "permissions": {"voices": self.can_manage_voices},
            "usage": {
                "requests": self.requests,
                "audio_in_s": round(self.audio_in_s, 3),
                "audio_out_s": round(self.audio_out_s, 3),
            },
        }


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: the only moment its plaintext exists."""

    key: str
    record: ApiKey


class RefusedKeyError(AuthError):
    """A key this gateway knows that no longer works (revoked or expired).

    It carries the key's record (never the key) so that the refused request is still booked
    under the key's name in the activity list and the log.
    """

    def __init__(self, message: str, *, code: str, record: ApiKey) -> None:
        super().__init__(message, code=code)
        self.record = record


class _Unset:
    pass


UNSET: Final = _Unset()


def _finite_or_none(value: float | None) -> float | None:
    # Older versions accepted expiries like 1e308 days: infinity means "never" and is not JSON.
    return value if value is not None and math.isfinite(value) else None


def row_to_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        kind=row["kind"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        expires_at=_finite_or_none(row["expires_at"]),
        rpm=row["rpm"],
        max_sessions=row["max_sessions"],
        requests=row["requests"],
        audio_in_s=row["audio_in_s"],
        audio_out_s=row["audio_out_s"],
        can_manage_voices=bool(row["can_manage_voices"]),
    )


def clean_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("A key needs a name, such as 'kitchen tablet'.", code="invalid_name")
    name = " ".join(name.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise ValidationError(
            "A key name must be printable Unicode text (no control characters or unpaired "
            "surrogates).",
            code="invalid_name",
        )
    if len(name) > 100:
        raise ValidationError("A key name can be at most 100 characters.", code="invalid_name")
    return name


def check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be a whole number from {low} to {high}.")
    return value
