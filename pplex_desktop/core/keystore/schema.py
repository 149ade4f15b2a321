"""The key store's SQLite schema: its file name and its migrations, oldest first.

A migration, once released, is never edited: databases in the field have run it. A change is
a new entry at the end.
"""

from __future__ import annotations

DB_NAME = "pplex.sqlite3"

MIGRATIONS = (
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
