"""API keys and the admin secret in SQLite, stored only as digests.

API keys are SHA-256 digests: a generated key has 238 random bits, so a fast unsalted hash
cannot be reversed, and authentication (every request) stays a dictionary lookup. The admin
secret is different: a user may choose it (PPLEX_ADMIN_SECRET), so it gets a salted, slow
scrypt hash; it is checked only on admin calls, behind a throttle, and a good secret is
remembered in memory so a script's admin calls do not each pay the ~50 ms.

Shared by the Qt thread (keys panel) and the gateway thread (every request). Authentication
is on the hot path, so records are cached in memory; the cache is dropped whenever this store
writes or another connection (another thread or process) commits, which SQLite's
``data_version`` reveals cheaply. Usage counters are summed in memory and flushed in batches
(usage.py); the original gateway's key file is read by legacy.py.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pplex_desktop.core import keys
from pplex_desktop.core.clock import Clock, SystemClock
from pplex_desktop.core.db import Database
from pplex_desktop.core.errors import AuthError, NotFoundError, ValidationError
from pplex_desktop.core.keystore.legacy import (
    ImportResult,
    import_entries,
    read_legacy_file,
    weak_keys_notice,
)
from pplex_desktop.core.keystore.records import (
    KIND_LEGACY,
    KIND_USER,
    KINDS,
    MAX_RPM,
    MAX_SESSIONS,
    UNSET,
    ApiKey,
    KeyState,
    NewKey,
    RefusedKeyError,
    _Unset,
    check_int,
    clean_name,
    row_to_key,
)
from pplex_desktop.core.keystore.schema import DB_NAME, MIGRATIONS
from pplex_desktop.core.keystore.secret_hash import (
    ADMIN_META_SCRYPT,
    ADMIN_META_SHA256,
    hash_admin_secret,
    verify_admin_hash,
)
from pplex_desktop.core.keystore.usage import DailyUsage, UsageLedger, daily_usage

_log = logging.getLogger(__name__)
# The first-launch welcome: "pending" from when it shows until a person completes it.
SETUP_META, SETUP_PENDING, SETUP_DONE = "setup", "pending", "done"


class KeyStore:
    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        default_rpm: int = 60,
        default_max_sessions: int = 1,
    ) -> None:
        self.db = Database(path, MIGRATIONS, label="The key store")
        self.clock = clock or SystemClock()
        self.default_rpm = check_int(default_rpm, "The default requests per minute", 1, MAX_RPM)
        self.default_max_sessions = default_max_sessions
        self._cache: dict[str, ApiKey] = {}
        self._cache_version = -1
        self._cache_lock = threading.Lock()
        self._legacy_count: int | None = None
        self._usage = UsageLedger(self.clock)
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
        name = clean_name(name)
        rpm = check_int(self.default_rpm if rpm is None else rpm, "Requests per minute", 1, MAX_RPM)
        sessions = self.default_max_sessions if max_sessions is None else max_sessions
        sessions = check_int(sessions, "Concurrent sessions", 1, MAX_SESSIONS)
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
        return self._usage.added_to(row_to_key(row))

    def list_keys(self, *, kinds: frozenset[str] | None = None) -> list[ApiKey]:
        rows = self.db.connection().execute("SELECT * FROM api_keys ORDER BY id").fetchall()
        found = [self._usage.added_to(row_to_key(r)) for r in rows]
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
            changes["name"] = clean_name(name)
        if not isinstance(rpm, _Unset):
            changes["rpm"] = check_int(rpm, "Requests per minute", 1, MAX_RPM)
        if not isinstance(max_sessions, _Unset):
            changes["max_sessions"] = check_int(
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
        self._usage.forget(key_id)
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
                record = row_to_key(row)
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
        self._usage.record(
            key_id, requests=requests, audio_in_s=audio_in_s, audio_out_s=audio_out_s
        )

    def flush_usage(self) -> int:
        """Write the summed usage to the database; return how many keys it touched."""
        return self._usage.flush(self.db)

    def daily_usage(self, key_id: int | None = None, *, days: int = 30) -> list[DailyUsage]:
        """Per-day usage, newest first, for one key or summed over all keys."""
        return daily_usage(self.db, key_id, days=days)

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
        entries = read_legacy_file(path)
        result = import_entries(
            self.db,
            entries,
            now=self.clock.wall(),
            default_rpm=self.default_rpm,
            default_max_sessions=self.default_max_sessions,
        )
        self._changed()
        if result.weak:
            _log.warning("%s", weak_keys_notice(result.weak))
        return result
