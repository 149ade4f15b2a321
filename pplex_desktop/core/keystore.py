"""API keys and the admin secret in SQLite, stored only as digests.

API keys are SHA-256 digests: a generated key has 238 random bits, so a fast unsalted hash
cannot be reversed, and authentication (every request) stays a dictionary lookup. The admin
secret is different: a user may choose it (PPLEX_ADMIN_SECRET), so it gets a salted, slow
scrypt hash; it is checked only on admin calls, behind a throttle, and a good secret is
remembered in memory so a script's admin calls do not each pay the ~50 ms.

Shared by the Qt thread (keys panel) and the gateway thread (every request). Authentication
is on the hot path, so records are cached in memory; the cache is dropped whenever this store
writes or another connection (another thread or process) commits, which SQLite's
``data_version`` reveals cheaply. Usage counters are summed in memory and flushed in batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import sqlite3
import string
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from pplex_desktop.core import keys
from pplex_desktop.core.clock import Clock, SystemClock
from pplex_desktop.core.db import Database
from pplex_desktop.core.errors import AuthError, NotFoundError, ValidationError

_log = logging.getLogger(__name__)
DB_NAME = "pplex.sqlite3"
KIND_USER = "user"
KIND_OWNER = "owner"  # the desktop app's own key, replaced at every start
KIND_PAIRED = "paired"  # made by "Pair a device"
KIND_LEGACY = "legacy"  # imported from the original gateway's api_keys.json
KINDS = frozenset({KIND_USER, KIND_OWNER, KIND_PAIRED, KIND_LEGACY})
LEGACY_PREFIX = "legacy-"
# The first-launch welcome: "pending" from when it shows until a person completes it.
SETUP_META, SETUP_PENDING, SETUP_DONE = "setup", "pending", "done"
MAX_RPM = 100_000
MAX_SESSIONS = 100

_MIGRATIONS = (
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL,
        expires_at REAL,
        rpm INTEGER NOT NULL,
        max_sessions INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        audio_in_s REAL NOT NULL DEFAULT 0,
        audio_out_s REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE usage_daily (
        key_id INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        day TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        audio_in_s REAL NOT NULL DEFAULT 0,
        audio_out_s REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, day)
    )
    """,
    # Imports before this version kept the first characters of legacy keys as their prefix:
    # for a short key, most or all of it.
    """
    UPDATE api_keys SET prefix = 'legacy-' || lower(hex(randomblob(2))) WHERE kind = 'legacy'
    """,
    # Permission to store and remove custom voices (README, "Custom voices"); off for every key
    # that existed before.
    """
    ALTER TABLE api_keys ADD COLUMN can_manage_voices INTEGER NOT NULL DEFAULT 0
    """,
)
# Legacy keys below this estimate (length x log2 of the character classes used) are flagged:
# 80 bits is out of reach of online guessing even from many addresses, and a random 16-character
# letters-and-digits key passes it.
WEAK_BELOW_BITS = 80
ADMIN_META_SCRYPT = "admin_secret_scrypt"
ADMIN_META_SHA256 = "admin_secret_sha256"  # written by earlier versions; upgraded when used
# scrypt's interactive-login parameters: ~50 ms and 16 MiB per check. Slow enough that a copy
# of the database does not give the secret away to a dictionary, fast enough that the admin
# throttle, not the hash, decides how often anyone can try.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


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


@dataclass(frozen=True, slots=True)
class DailyUsage:
    day: str
    requests: int
    audio_in_s: float
    audio_out_s: float


class RefusedKeyError(AuthError):
    """A key this gateway knows that no longer works (revoked or expired).

    It carries the key's record (never the key) so that the refused request is still booked
    under the key's name in the activity list and the log.
    """

    def __init__(self, message: str, *, code: str, record: ApiKey) -> None:
        super().__init__(message, code=code)
        self.record = record


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


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # The cap keeps a tampered parameter set from asking for gigabytes: it fails instead.
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def hash_admin_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash``: the parameters travel with the hash so they can change."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_admin_hash(stored: str, secret: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        wanted = bytes.fromhex(digest)
        got = _scrypt(secret, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return secrets.compare_digest(got, wanted)


class _Unset:
    pass


UNSET: Final = _Unset()


def _finite_or_none(value: float | None) -> float | None:
    # Older versions accepted expiries like 1e308 days: infinity means "never" and is not JSON.
    return value if value is not None and math.isfinite(value) else None


def _row_to_key(row: sqlite3.Row) -> ApiKey:
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


def _clean_name(name: object) -> str:
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


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be a whole number from {low} to {high}.")
    return value


class KeyStore:
    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        default_rpm: int = 60,
        default_max_sessions: int = 1,
    ) -> None:
        self.db = Database(path, _MIGRATIONS, label="The key store")
        self.clock = clock or SystemClock()
        self.default_rpm = _check_int(default_rpm, "The default requests per minute", 1, MAX_RPM)
        self.default_max_sessions = default_max_sessions
        self._cache: dict[str, ApiKey] = {}
        self._cache_version = -1
        self._cache_lock = threading.Lock()
        self._legacy_count: int | None = None
        self._pending: dict[int, list[float]] = {}
        self._pending_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._admin_ok: tuple[str, str] | None = None  # (stored hash, SHA-256 of the secret)

    @classmethod
    def in_folder(cls, folder: Path, **kwargs: Any) -> KeyStore:
        return cls(folder / DB_NAME, **kwargs)

    def close(self) -> None:
        self.flush_usage()
        self.db.close()

    # -- change notification ---------------------------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (in the writing thread) after any change to the keys."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._cache_version = -1
            self._legacy_count = None
        for listener in list(self._listeners):
            listener()

    def reload(self) -> None:
        """Forget every cached key (on SIGHUP), so the next request reads the file again."""
        self._changed()

    # -- keys --------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        rpm: int | None = None,
        max_sessions: int | None = None,
        expires_at: float | None = None,
        kind: str = KIND_USER,
        can_manage_voices: bool = False,
    ) -> NewKey:
        name = _clean_name(name)
        rpm = _check_int(
            self.default_rpm if rpm is None else rpm, "Requests per minute", 1, MAX_RPM
        )
        sessions = self.default_max_sessions if max_sessions is None else max_sessions
        sessions = _check_int(sessions, "Concurrent sessions", 1, MAX_SESSIONS)
        if kind not in KINDS:
            raise ValidationError(f"The key kind {kind!r} is unknown.")
        now = self.clock.wall()
        if expires_at is not None and (not math.isfinite(expires_at) or expires_at <= now):
            raise ValidationError(
                "The expiry time must be a finite time in the future.", code="invalid_expiry"
            )
        secret = keys.new_key()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO api_keys (name, prefix, digest, kind, created_at, expires_at, rpm,"
                " max_sessions, can_manage_voices) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    keys.display_prefix(secret),
                    keys.digest(secret),
                    kind,
                    now,
                    expires_at,
                    rpm,
                    sessions,
                    int(bool(can_manage_voices)),
                ),
            )
            key_id = int(cur.lastrowid or 0)
        self._changed()
        return NewKey(secret, self.get(key_id))

    def get(self, key_id: int) -> ApiKey:
        row = (
            self.db.connection()
            .execute("SELECT * FROM api_keys WHERE id = ?", (key_id,))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"There is no API key with id {key_id}.", code="key_not_found")
        return self._with_pending(_row_to_key(row))

    def list_keys(self, *, kinds: frozenset[str] | None = None) -> list[ApiKey]:
        rows = self.db.connection().execute("SELECT * FROM api_keys ORDER BY id").fetchall()
        found = [self._with_pending(_row_to_key(r)) for r in rows]
        return [k for k in found if kinds is None or k.kind in kinds]

    def update(
        self,
        key_id: int,
        *,
        name: str | _Unset = UNSET,
        rpm: int | _Unset = UNSET,
        max_sessions: int | _Unset = UNSET,
        expires_at: float | _Unset | None = UNSET,
        can_manage_voices: bool | _Unset = UNSET,
    ) -> ApiKey:
        changes: dict[str, object] = {}
        if not isinstance(can_manage_voices, _Unset):
            if not isinstance(can_manage_voices, bool):
                raise ValidationError("The voices permission must be true or false.")
            changes["can_manage_voices"] = int(can_manage_voices)
        if not isinstance(name, _Unset):
            changes["name"] = _clean_name(name)
        if not isinstance(rpm, _Unset):
            changes["rpm"] = _check_int(rpm, "Requests per minute", 1, MAX_RPM)
        if not isinstance(max_sessions, _Unset):
            changes["max_sessions"] = _check_int(
                max_sessions, "Concurrent sessions", 1, MAX_SESSIONS
            )
        if not isinstance(expires_at, _Unset):
            if expires_at is not None and (
                not math.isfinite(expires_at) or expires_at <= self.clock.wall()
            ):
                raise ValidationError(
                    "The expiry time must be a finite time in the future.", code="invalid_expiry"
                )
            changes["expires_at"] = expires_at
        current = self.get(key_id)
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            with self.db.transaction() as conn:
                conn.execute(
                    f"UPDATE api_keys SET {assignments} WHERE id = ?",  # noqa: S608 (fixed columns)
                    (*changes.values(), key_id),
                )
            self._changed()
            return self.get(key_id)
        return current

    def revoke(self, key_id: int) -> ApiKey:
        current = self.get(key_id)
        if current.revoked_at is None:
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (self.clock.wall(), key_id)
                )
            self._changed()
        return self.get(key_id)

    def delete(self, key_id: int) -> None:
        self.get(key_id)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
        with self._pending_lock:
            self._pending.pop(key_id, None)
        self._changed()

    def delete_kind(self, kind: str) -> int:
        """Remove every key of one kind (the desktop's previous owner keys at start-up)."""
        with self.db.transaction() as conn:
            count = conn.execute("DELETE FROM api_keys WHERE kind = ?", (kind,)).rowcount
        if count:
            self._changed()
        return count

    # -- authentication (hot path) ------------------------------------------------------------

    def _refresh_cache(self) -> None:
        version = self.db.data_version()
        if version != self._cache_version:
            self._cache.clear()
            self._legacy_count = None
            self._cache_version = version

    def _has_legacy_keys(self) -> bool:
        if self._legacy_count is None:
            row = (
                self.db.connection()
                .execute("SELECT COUNT(*) FROM api_keys WHERE kind = ?", (KIND_LEGACY,))
                .fetchone()
            )
            self._legacy_count = int(row[0])
        return self._legacy_count > 0

    def authenticate(self, secret: str | None) -> ApiKey:
        """Return the active key for ``secret`` or raise AuthError with a precise code."""
        if not secret:
            raise AuthError(
                "This endpoint needs an API key: send it as the X-API-Key header, an "
                "Authorization: Bearer header, or the api_key query parameter.",
                code="missing_api_key",
            )
        with self._cache_lock:
            self._refresh_cache()
            well_formed = keys.is_well_formed(secret)
            if not well_formed and not self._has_legacy_keys():
                raise AuthError(
                    "The API key is malformed: pplex keys start with 'pplx_' and are "
                    f"{keys.KEY_LEN} characters long; check that it was copied whole.",
                    code="malformed_api_key",
                )
            wanted = keys.digest(secret)
            record = self._cache.get(wanted)
            if record is None:
                row = (
                    self.db.connection()
                    .execute("SELECT * FROM api_keys WHERE digest = ?", (wanted,))
                    .fetchone()
                )
                if row is None or not secrets.compare_digest(row["digest"], wanted):
                    raise AuthError(
                        "The API key is not known to this gateway.", code="unknown_api_key"
                    )
                record = _row_to_key(row)
                self._cache[wanted] = record
        state = record.state(self.clock.wall())
        if state is KeyState.REVOKED:
            raise RefusedKeyError(
                f"The API key '{record.name}' has been revoked.",
                code="revoked_api_key",
                record=record,
            )
        if state is KeyState.EXPIRED:
            raise RefusedKeyError(
                f"The API key '{record.name}' has expired.", code="expired_api_key", record=record
            )
        return record

    def is_active(self, key_id: int) -> bool:
        try:
            return self.get(key_id).state(self.clock.wall()) is KeyState.ACTIVE
        except NotFoundError:
            return False

    # -- usage ------------------------------------------------------------------------------

    def record_usage(
        self, key_id: int, *, requests: int = 0, audio_in_s: float = 0.0, audio_out_s: float = 0.0
    ) -> None:
        with self._pending_lock:
            entry = self._pending.setdefault(key_id, [0, 0.0, 0.0, 0.0])
            entry[0] += requests
            entry[1] += audio_in_s
            entry[2] += audio_out_s
            entry[3] = self.clock.wall()

    def _with_pending(self, record: ApiKey) -> ApiKey:
        with self._pending_lock:
            entry = self._pending.get(record.id)
            if entry is None:
                return record
            return replace(
                record,
                requests=record.requests + int(entry[0]),
                audio_in_s=record.audio_in_s + entry[1],
                audio_out_s=record.audio_out_s + entry[2],
                last_used_at=entry[3],
            )

    def flush_usage(self) -> int:
        """Write the summed usage to the database; return how many keys it touched."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock.wall()))
        with self.db.transaction() as conn:
            for key_id, (requests, audio_in, audio_out, last_used) in pending.items():
                conn.execute(
                    "UPDATE api_keys SET requests = requests + ?, audio_in_s = audio_in_s + ?,"
                    " audio_out_s = audio_out_s + ?,"
                    " last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                    (int(requests), audio_in, audio_out, last_used, key_id),
                )
                conn.execute(
                    "INSERT INTO usage_daily (key_id, day, requests, audio_in_s, audio_out_s)"
                    " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?)"
                    " ON CONFLICT (key_id, day) DO UPDATE SET"
                    " requests = requests + excluded.requests,"
                    " audio_in_s = audio_in_s + excluded.audio_in_s,"
                    " audio_out_s = audio_out_s + excluded.audio_out_s",
                    (key_id, day, int(requests), audio_in, audio_out, key_id),
                )
        return len(pending)

    def daily_usage(self, key_id: int | None = None, *, days: int = 30) -> list[DailyUsage]:
        """Per-day usage, newest first, for one key or summed over all keys."""
        # One fixed query: a NULL key_id means "every key".
        params = (key_id, key_id, days)
        rows = (
            self.db.connection()
            .execute(
                "SELECT day, SUM(requests), SUM(audio_in_s), SUM(audio_out_s) FROM usage_daily"
                " WHERE (? IS NULL OR key_id = ?) GROUP BY day ORDER BY day DESC LIMIT ?",
                params,
            )
            .fetchall()
        )
        return [DailyUsage(r[0], int(r[1]), float(r[2]), float(r[3])) for r in rows]

    # -- admin secret -------------------------------------------------------------------------

    def _meta(self, name: str) -> str | None:
        row = (
            self.db.connection()
            .execute("SELECT value FROM meta WHERE name = ?", (name,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def _set_meta(self, name: str, value: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def has_admin_secret(self) -> bool:
        return any(self._meta(n) is not None for n in (ADMIN_META_SCRYPT, ADMIN_META_SHA256))

    def set_admin_secret(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValidationError("The admin secret must be at least 16 characters long.")
        stored = self._meta(ADMIN_META_SCRYPT)
        if stored is not None and self.check_admin_secret(secret):
            return  # the same secret at every start (PPLEX_ADMIN_SECRET): nothing to write
        hashed = hash_admin_secret(secret)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (ADMIN_META_SCRYPT, hashed),
            )
            conn.execute("DELETE FROM meta WHERE name = ?", (ADMIN_META_SHA256,))
        self._admin_ok = (hashed, keys.digest(secret))

    def new_admin_secret(self) -> str:
        """Make, store (as a digest) and return a new admin secret; shown to the user once."""
        secret = "pplxadmin_" + secrets.token_urlsafe(32)
        self.set_admin_secret(secret)
        return secret

    def ensure_admin_secret(self) -> str | None:
        """On first launch make the admin secret and return it; afterwards return None."""
        if self.has_admin_secret():
            return None
        return self.new_admin_secret()

    def setup_finished(self) -> bool:
        """Whether a person completed the first-launch welcome (or an admin secret was given).

        A folder from before this mark existed has a secret and no mark: its setup was done.
        """
        mark = self._meta(SETUP_META)
        return mark == SETUP_DONE or (mark is None and self.has_admin_secret())

    def begin_setup(self) -> str:
        """A new admin secret for a welcome about to show it; setup stays unfinished until
        finish_setup(). Each showing replaces the secret, so the one on screen always works."""
        secret = self.new_admin_secret()
        self._set_meta(SETUP_META, SETUP_PENDING)
        return secret

    def finish_setup(self) -> None:
        self._set_meta(SETUP_META, SETUP_DONE)

    def check_admin_secret(self, secret: str | None) -> bool:
        if not secret:
            return False
        quick = keys.digest(secret)
        stored = self._meta(ADMIN_META_SCRYPT)
        if stored is not None:
            remembered = self._admin_ok
            if remembered is not None and remembered[0] == stored:
                return secrets.compare_digest(remembered[1], quick)
            if not verify_admin_hash(stored, secret):
                return False
            self._admin_ok = (stored, quick)
            return True
        legacy = self._meta(ADMIN_META_SHA256)
        if legacy is None or not secrets.compare_digest(legacy, quick):
            return False
        self.set_admin_secret(secret)  # upgrade the unsalted digest of earlier versions
        _log.info("The admin secret's stored hash was upgraded to scrypt.")
        return True

    # -- import ---------------------------------------------------------------------------

    def import_legacy_json(self, path: Path) -> ImportResult:
        """Import the original gateway's api_keys.json; keys keep working, stored as digests."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"{path.name} cannot be read as JSON: {exc}.") from None
        entries = _legacy_entries(data)
        if entries is None:
            raise ValidationError(
                f"{path.name} is not in a known api_keys.json format: expected an object of "
                "key to details, a list of objects with a 'key', or {'keys': [...]}."
            )
        imported = skipped = 0
        weak: list[str] = []
        now = self.clock.wall()
        with self.db.transaction() as conn:
            for secret, details in entries:
                digest = keys.digest(secret)
                if conn.execute("SELECT 1 FROM api_keys WHERE digest = ?", (digest,)).fetchone():
                    skipped += 1
                    continue
                name = str(details.get("name") or details.get("owner") or "imported key")[:100]
                created = details.get("created_at") or details.get("created")
                created_at = float(created) if isinstance(created, (int, float)) else now
                rpm = details.get("rpm") or details.get("rate_limit") or self.default_rpm
                well_formed = keys.is_well_formed(secret)
                kind = KIND_USER if well_formed else KIND_LEGACY
                revoked = details.get("active") is False or details.get("revoked") is True
                conn.execute(
                    "INSERT INTO api_keys (name, prefix, digest, kind, created_at, revoked_at, rpm,"
                    " max_sessions) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        _clean_name(name),
                        keys.display_prefix(secret) if well_formed else _legacy_prefix(),
                        digest,
                        kind,
                        created_at,
                        now if revoked else None,
                        int(rpm)
                        if isinstance(rpm, int) and 0 < rpm <= MAX_RPM
                        else self.default_rpm,
                        self.default_max_sessions,
                    ),
                )
                imported += 1
                if not well_formed and key_strength_bits(secret) < WEAK_BELOW_BITS:
                    weak.append(_clean_name(name))
        self._changed()
        if weak:
            _log.warning("%s", weak_keys_notice(tuple(weak)))
        return ImportResult(imported, skipped, tuple(weak))


def _legacy_entries(data: object) -> list[tuple[str, dict[str, Any]]] | None:
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
