"""Offline inference jobs in SQLite: what was asked, by which key, and how far it got.

The rows live in their own file (``jobs.sqlite3`` next to ``pplex.sqlite3``) because each
database file carries one schema version. Jobs survive a restart: a job found ``running`` at
start was interrupted and is queued again, up to ``MAX_ATTEMPTS`` runs, so one input that kills
the gateway cannot make it crash forever.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pplex_desktop.core.db import Database
from pplex_desktop.core.errors import NotFoundError

DB_NAME = "jobs.sqlite3"
MAX_ATTEMPTS = 3
PRIORITY_SYNC = 0  # POST /v1/inference: somebody is waiting on the connection
PRIORITY_BATCH = 1

_MIGRATIONS = (
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        key_id INTEGER NOT NULL,
        key_name TEXT NOT NULL,
        state TEXT NOT NULL,
        priority INTEGER NOT NULL,
        engine TEXT NOT NULL,
        input_name TEXT NOT NULL,
        persona TEXT NOT NULL,
        voice TEXT NOT NULL,
        seed INTEGER,
        silence_s REAL NOT NULL,
        input_s REAL NOT NULL,
        output_s REAL,
        progress REAL NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        start_seq INTEGER,
        error_code TEXT,
        error_status INTEGER,
        error TEXT,
        transcript TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_by_key ON jobs (key_id, seq);
    CREATE INDEX jobs_by_state ON jobs (state, priority, seq);
    CREATE INDEX jobs_key_starts ON jobs (key_id, start_seq);
    CREATE INDEX jobs_by_finish ON jobs (finished_at)
    """,
)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class NewJob:
    key_id: int
    key_name: str
    priority: int
    engine: str
    input_name: str
    persona: str
    voice: str
    seed: int | None
    silence_s: float
    input_s: float


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    seq: int
    key_id: int
    key_name: str
    state: JobState
    priority: int
    engine: str
    input_name: str
    persona: str
    voice: str
    seed: int | None
    silence_s: float
    input_s: float
    output_s: float | None
    progress: float
    attempts: int
    error_code: str | None
    error_status: int | None  # the HTTP status a waiting caller gets for this failure
    error: str | None
    transcript: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def target_s(self) -> float:
        """The length of the answer: the input plus the trailing silence."""
        return self.input_s + self.silence_s


_COLUMNS = (
    "id, seq, key_id, key_name, state, priority, engine, input_name, persona, voice, seed, "
    "silence_s, input_s, output_s, progress, attempts, error_code, error_status, error, "
    "transcript, created_at, started_at, finished_at"
)


def _row_to_job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    return Job(**values)


def new_job_id() -> str:
    """Unguessable, so a job id alone reveals nothing about other callers' jobs."""
    return "job_" + secrets.token_hex(10)


class JobStore:
    def __init__(self, path: Path) -> None:
        self.db = Database(path, _MIGRATIONS, label="The job store")

    @classmethod
    def in_folder(cls, folder: Path) -> JobStore:
        return cls(folder / DB_NAME)

    def close(self) -> None:
        self.db.close()

    def _one(self, sql: str, params: Iterable[object] = ()) -> Job | None:
        row = self.db.connection().execute(sql, tuple(params)).fetchone()
        return None if row is None else _row_to_job(row)

    # -- creating and reading ------------------------------------------------------------

    def create(self, new: NewJob, *, job_id: str, now: float) -> Job:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, key_id, key_name, state, priority, engine, input_name, "
                "persona, voice, seed, silence_s, input_s, created_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    new.key_id,
                    new.key_name,
                    new.priority,
                    new.engine,
                    new.input_name,
                    new.persona,
                    new.voice,
                    new.seed,
                    new.silence_s,
                    new.input_s,
                    now,
                ),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        return self._one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))  # noqa: S608

    def get_for_key(self, job_id: str, key_id: int) -> Job:
        """Another key's job is reported exactly like a missing one: its existence is private."""
        job = self.get(job_id)
        if job is None or job.key_id != key_id:
            raise NotFoundError(f"There is no job {job_id[:40]!r} for this key.", code="no_job")
        return job

    def list_for_key(self, key_id: int, *, limit: int, offset: int) -> tuple[list[Job], int]:
        conn = self.db.connection()
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE key_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            (key_id, limit, offset),
        ).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM jobs WHERE key_id = ?", (key_id,)).fetchone()
        return [_row_to_job(r) for r in rows], int(total[0])

    def count_unfinished(self, key_id: int) -> int:
        row = (
            self.db.connection()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE key_id = ? AND state IN ('queued', 'running')",
                (key_id,),
            )
            .fetchone()
        )
        return int(row[0])

    def counts_by_state(self) -> dict[str, int]:
        rows = self.db.connection().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        counts = dict.fromkeys((s.value for s in JobState), 0)
        counts.update({str(state): int(n) for state, n in rows.fetchall()})
        return counts

    def ids(self) -> set[str]:
        rows = self.db.connection().execute("SELECT id FROM jobs").fetchall()
        return {str(r[0]) for r in rows}

    # -- running --------------------------------------------------------------------------

    def claim_next(self, now: float) -> Job | None:
        """Take the next queued job and mark it running.

        Waiting callers first, then interrupted jobs, then the key whose last job started
        longest ago (so one key's hundred files cannot starve everyone else), then age.
        """
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT j.id FROM jobs j WHERE j.state = 'queued' ORDER BY j.priority, "
                "j.attempts = 0, (SELECT COALESCE(MAX(k.start_seq), 0) FROM jobs k "
                "WHERE k.key_id = j.key_id), j.seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1, "
                "progress = 0, start_seq = (SELECT COALESCE(MAX(start_seq), 0) + 1 FROM jobs) "
                "WHERE id = ?",
                (now, row[0]),
            )
        return self.get(str(row[0]))

    def _finish(self, job_id: str, sql: str, params: tuple[object, ...]) -> Job | None:
        """Apply a final state if the job is still unfinished; return it, or None if not."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                # ``sql`` is one of this module's constant clauses, never caller input.
                f"UPDATE jobs SET {sql} WHERE id = ? AND state IN ('queued', 'running')",  # noqa: S608
                (*params, job_id),
            )
            changed = cursor.rowcount == 1
        return self.get(job_id) if changed else None

    def mark_done(self, job_id: str, *, now: float, output_s: float, transcript: str) -> Job | None:
        return self._finish(
            job_id,
            "state = 'done', finished_at = ?, output_s = ?, transcript = ?, progress = 1",
            (now, output_s, transcript),
        )

    def mark_failed(
        self, job_id: str, *, now: float, code: str, status: int, message: str
    ) -> Job | None:
        return self._finish(
            job_id,
            "state = 'failed', finished_at = ?, error_code = ?, error_status = ?, error = ?",
            (now, code, status, message),
        )

    def mark_cancelled(self, job_id: str, *, now: float) -> Job | None:
        return self._finish(
            job_id,
            "state = 'cancelled', finished_at = ?, error_code = 'cancelled', error_status = 409, "
            "error = 'The job was cancelled.'",
            (now,),
        )

    def requeue(self, job_id: str) -> None:
        """A run stopped by a clean shutdown does not count as an attempt."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', progress = 0, attempts = MAX(attempts - 1, 0) "
                "WHERE id = ? AND state = 'running'",
                (job_id,),
            )

    def recover(self, *, now: float) -> tuple[list[str], list[str]]:
        """At start: queue again the jobs a dead gateway left running; give up on repeat victims."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, attempts FROM jobs WHERE state = 'running' ORDER BY seq"
            ).fetchall()
            requeued: list[str] = []
            failed: list[str] = []
            for job_id, attempts in rows:
                if attempts >= MAX_ATTEMPTS:
                    conn.execute(
                        "UPDATE jobs SET state = 'failed', finished_at = ?, error_code = "
                        "'interrupted', error_status = 503, error = ? WHERE id = ?",
                        (
                            now,
                            f"The gateway stopped {attempts} times while running this job; it "
                            "was given up so that it cannot stop the gateway again.",
                            job_id,
                        ),
                    )
                    failed.append(str(job_id))
                else:
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', progress = 0 WHERE id = ?", (job_id,)
                    )
                    requeued.append(str(job_id))
        return requeued, failed

    def reassign(self, job_ids: Iterable[str], *, key_id: int, key_name: str) -> list[str]:
        """Hand jobs to another key; return the ids that moved.

        For the desktop app only: its owner key is replaced at every start, so it takes back
        the jobs it recorded under its earlier keys. The HTTP API never calls this.
        """
        moved: list[str] = []
        with self.db.transaction() as conn:
            for job_id in job_ids:
                cursor = conn.execute(
                    "UPDATE jobs SET key_id = ?, key_name = ? WHERE id = ? AND key_id != ?",
                    (key_id, key_name, job_id, key_id),
                )
                if cursor.rowcount == 1:
                    moved.append(job_id)
        return moved

    # -- removing -------------------------------------------------------------------------

    def delete(self, job_id: str) -> bool:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    def expired(self, before: float) -> list[str]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? "
                "AND state IN ('done', 'failed', 'cancelled') ORDER BY seq",
                (before,),
            )
            .fetchall()
        )
        return [str(r[0]) for r in rows]
