"""Usage accounting: requests and audio seconds per key, summed in memory, flushed in batches.

Every request and every second of audio counts, so writing each to SQLite would put a
transaction on the hot path; the ledger sums them and the store flushes the sums (every few
seconds, before a report, at close) into the key's totals and its per-day row.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from pplex_desktop.core.clock import Clock
from pplex_desktop.core.db import Database
from pplex_desktop.core.keystore.records import ApiKey


@dataclass(frozen=True, slots=True)
class DailyUsage:
    day: str
    requests: int
    audio_in_s: float
    audio_out_s: float


class UsageLedger:
    """Usage not yet written: per key id, [requests, audio in s, audio out s, last used at]."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._pending: dict[int, list[float]] = {}
        self._lock = threading.Lock()

    def record(
        self, key_id: int, *, requests: int = 0, audio_in_s: float = 0.0, audio_out_s: float = 0.0
    ) -> None:
        with self._lock:
            entry = self._pending.setdefault(key_id, [0, 0.0, 0.0, 0.0])
            entry[0] += requests
            entry[1] += audio_in_s
            entry[2] += audio_out_s
            entry[3] = self.clock.wall()

    def forget(self, key_id: int) -> None:
        """Drop what a deleted key used since the last flush."""
        with self._lock:
            self._pending.pop(key_id, None)

    def added_to(self, record: ApiKey) -> ApiKey:
        """``record`` with the usage not yet written counted in."""
        with self._lock:
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

    def flush(self, db: Database) -> int:
        """Write the summed usage to ``db``; return how many keys it touched."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock.wall()))
        with db.transaction() as conn:
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


def daily_usage(db: Database, key_id: int | None = None, *, days: int = 30) -> list[DailyUsage]:
    """Per-day usage, newest first, for one key or summed over all keys."""
    # One fixed query: a NULL key_id means "every key".
    params = (key_id, key_id, days)
    rows = (
        db.connection()
        .execute(
            "SELECT day, SUM(requests), SUM(audio_in_s), SUM(audio_out_s) FROM usage_daily"
            " WHERE (? IS NULL OR key_id = ?) GROUP BY day ORDER BY day DESC LIMIT ?",
            params,
        )
        .fetchall()
    )
    return [DailyUsage(r[0], int(r[1]), float(r[2]), float(r[3])) for r in rows]
