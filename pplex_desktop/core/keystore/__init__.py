"""API keys and the admin secret, stored in SQLite as digests: the one entry point.

Import from here, not from the modules inside, which are cut along the store's seams:

- records.py: what a key is (its record, states, kinds and field checks);
- store.py: the store itself (keys, authentication, the admin secret);
- usage.py: usage accounting, summed in memory and flushed in batches;
- legacy.py: import of the original gateway's api_keys.json;
- secret_hash.py: the admin secret's scrypt hash;
- schema.py: the SQLite file's name and migrations.
"""

from __future__ import annotations

from pplex_desktop.core.keystore.legacy import (
    LEGACY_PREFIX,
    WEAK_BELOW_BITS,
    ImportResult,
    key_strength_bits,
    weak_keys_notice,
)
from pplex_desktop.core.keystore.records import (
    KIND_LEGACY,
    KIND_OWNER,
    KIND_PAIRED,
    KIND_USER,
    KINDS,
    MAX_RPM,
    MAX_SESSIONS,
    UNSET,
    ApiKey,
    KeyState,
    NewKey,
    RefusedKeyError,
)
from pplex_desktop.core.keystore.schema import DB_NAME
from pplex_desktop.core.keystore.secret_hash import hash_admin_secret, verify_admin_hash
from pplex_desktop.core.keystore.store import SETUP_DONE, SETUP_META, SETUP_PENDING, KeyStore
from pplex_desktop.core.keystore.usage import DailyUsage

__all__ = [
    "DB_NAME",
    "KINDS",
    "KIND_LEGACY",
    "KIND_OWNER",
    "KIND_PAIRED",
    "KIND_USER",
    "LEGACY_PREFIX",
    "MAX_RPM",
    "MAX_SESSIONS",
    "SETUP_DONE",
    "SETUP_META",
    "SETUP_PENDING",
    "UNSET",
    "WEAK_BELOW_BITS",
    "ApiKey",
    "DailyUsage",
    "ImportResult",
    "KeyState",
    "KeyStore",
    "NewKey",
    "RefusedKeyError",
    "hash_admin_secret",
    "key_strength_bits",
    "verify_admin_hash",
    "weak_keys_notice",
]
