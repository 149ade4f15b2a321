"""The Offline page's own record of its batches: which file became which job, and what came out.

The gateway keeps jobs, but a job only knows the name of its upload, not the file on this
computer nor where its answer should go; and the app's owner key changes at every start. This
small SQLite file in the data folder (``offline.sqlite3``) is what lets a batch outlive the
app: at the next start the page lists every row again, takes back its jobs and carries on.
It also keeps what the page was left with (ticked personas and voices, the last folder).

No Qt; the page calls it on the gateway thread, never on the Qt thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from pplex_desktop.core.db import Database

DB_NAME = "offline.sqlite3"

_MIGRATIONS = (
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        batch INTEGER NOT NULL,
        path TEXT NOT NULL,
        out_dir TEXT,
        persona TEXT NOT NULL,
        voice TEXT NOT NULL,
        seed INTEGER,
        silence_s REAL NOT NULL,
        state TEXT NOT NULL,
        job_id TEXT,
        message TEXT,
        input_s REAL,
        output_s REAL,
        started_at REAL,
        finished_at REAL,
        audio_path TEXT,
        transcript_path TEXT,
        transcript TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX items_by_job ON items (job_id)
    """,
    # What the page was left with (ticked personas and voices, the last folder), as JSON per name:
    # kept with the data folder, so another folder starts with its own.
    """
    CREATE TABLE page_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)


class ItemState(StrEnum):
    WAITING = "waiting"  # checked, not yet sent to the gateway
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    SAVING = "saving"  # done on the gateway, the answer on its way to disk
    DONE = "done"  # the answer is saved
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # never sent: not audio, too long or too big; one row per file
    GONE = "gone"  # the gateway no longer has the job (expired or deleted elsewhere)

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def on_gateway(self) -> bool:
        """A job the gateway is working on, whose news the page waits for."""
        return self in (ItemState.QUEUED, ItemState.RUNNING, ItemState.SAVING)


_FINAL = frozenset(
    {ItemState.DONE, ItemState.FAILED, ItemState.CANCELLED, ItemState.REFUSED, ItemState.GONE}
)
# A refused file is fixed and dropped again, not retried: nothing about it would change.
_RETRYABLE = _FINAL - {ItemState.DONE, ItemState.REFUSED}


@dataclass(frozen=True, slots=True)
class NewItem:
    batch: int
    path: Path
    out_dir: Path | None  # None: next to the input
    persona: str
    voice: str  # as the gateway names it, e.g. NATF2
    seed: int | None
    silence_s: float
    state: ItemState
    message: str | None
    input_s: float | None
    created_at: float


@dataclass(slots=True)
class Item:
    """One row: a file with one persona and one voice. Mutated on the Qt thread only."""

    id: int
    batch: int
    path: Path
    out_dir: Path | None
    persona: str
    voice: str
    seed: int | None
    silence_s: float
    state: ItemState
    created_at: float
    job_id: str | None = None
    message: str | None = None
    input_s: float | None = None
    output_s: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    audio_path: Path | None = None
    transcript_path: Path | None = None
    transcript: str | None = None
    progress: float = 0.0  # not kept: the gateway says again
    stage: str | None = None  # likewise

    @property
    def duration_s(self) -> float | None:
        """The answer's length: the input plus the trailing silence, until it is known."""
        if self.output_s is not None:
            return self.output_s
        return None if self.input_s is None else self.input_s + self.silence_s


_KEPT = frozenset(f.name for f in fields(Item)) - {"id", "progress", "stage"}
_PATHS = frozenset({"path", "out_dir", "audio_path", "transcript_path"})


def _to_column(name: str, value: object) -> object:
    if value is None:
        return None
    if name in _PATHS or name == "state":
        return str(value)
    return value


def _from_row(row: sqlite3.Row) -> Item:
    values = dict(row)
    for name in _PATHS:
        if values[name] is not None:
            values[name] = Path(values[name])
    values["state"] = ItemState(values["state"])
    return Item(**values)


class BatchRecord:
    def __init__(self, folder: Path) -> None:
        self.db = Database(folder / DB_NAME, _MIGRATIONS, label="The offline batch record")

    def close(self) -> None:
        self.db.close()

    def add(self, new: Iterable[NewItem]) -> list[Item]:
        made: list[Item] = []
        with self.db.transaction() as conn:
            for entry in new:
                values = {f.name: getattr(entry, f.name) for f in fields(NewItem)}
                names = ", ".join(values)
                marks = ", ".join("?" for _ in values)
                cursor = conn.execute(
                    f"INSERT INTO items ({names}) VALUES ({marks})",  # noqa: S608 (our own names)
                    tuple(_to_column(k, v) for k, v in values.items()),
                )
                assert cursor.lastrowid is not None
                made.append(Item(id=cursor.lastrowid, **values))
        return made

    def update(self, item_id: int, changes: Mapping[str, object]) -> None:
        unknown = set(changes) - _KEPT
        if unknown:
            raise ValueError(f"Not a recorded field: {', '.join(sorted(unknown))}.")
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE items SET {assignments} WHERE id = ?",  # noqa: S608 (checked names)
                (*(_to_column(k, v) for k, v in changes.items()), item_id),
            )

    def delete(self, item_ids: Iterable[int]) -> None:
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in item_ids])

    def load(self) -> list[Item]:
        names = ", ".join(f.name for f in fields(Item) if f.name not in ("progress", "stage"))
        rows = (
            self.db.connection()
            .execute(f"SELECT {names} FROM items ORDER BY id")  # noqa: S608 (our own names)
            .fetchall()
        )
        return [_from_row(r) for r in rows]

    def page_state(self) -> dict[str, Any]:
        rows = self.db.connection().execute("SELECT name, value FROM page_state").fetchall()
        state: dict[str, Any] = {}
        for row in rows:
            try:
                state[row["name"]] = json.loads(row["value"])
            except ValueError:
                continue  # a damaged entry is forgotten, never a reason not to open the page
        return state

    def set_page_state(self, name: str, value: object) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO page_state (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, json.dumps(value)),
            )

    def next_batch(self) -> int:
        row = self.db.connection().execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM items")
        return int(row.fetchone()[0])
