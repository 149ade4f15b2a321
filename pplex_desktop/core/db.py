"""SQLite access shared by the stores: WAL, one connection per thread, schema migrations.

The Qt thread and the gateway thread both use the stores; SQLite connections must not cross
threads, so each thread lazily opens its own on the same file. The event loop hands store
writes to ``Database.run``, which runs them on the database's own worker threads; close()
waits for that work, since closing a connection another thread is inside crashes Python.

A file that is damaged, foreign or unwritable is found at opening, before anything is written
to it, and reported as a sentence that names the file and what to do; the stores hold key
digests and users' jobs, so their files are owner-only (0600), fixed at opening if looser.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pplex_desktop.core.errors import PplexError, UnavailableError
from pplex_desktop.core.paths import make_private

_COMPANIONS = ("-wal", "-shm", "-journal")
T = TypeVar("T")
BUSY_RETRY_S = 5
# Store writes from the event loop run on a few threads of the store's own: each thread keeps a
# connection open until close(), and SQLite serialises writers anyway.
WORKERS = 4


class StoreError(PplexError):
    code = "store_error"
    status = 500


class Database:
    def __init__(
        self, path: Path, migrations: Sequence[str], *, label: str = "The database"
    ) -> None:
        self.path = path
        self.label = label
        self._migrations = migrations
        self._local = threading.local()
        self._active = 0
        self._idle = threading.Condition()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._open_checked()
        except sqlite3.Error as exc:
            self.close()
            raise self._damaged(exc) from None
        except StoreError:
            self.close()
            raise

    def _open_checked(self) -> None:
        if self.path.exists() and not self.path.is_file():
            raise StoreError(
                f"{self.label} {self.path} is a folder, not a database file. Move it aside to "
                "start with an empty store, or restore a backup."
            )
        if self.path.exists():
            self._inspect()
        else:
            # SQLite would create it 0644; its -wal and -shm files copy the main file's mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._migrate()
        for suffix in ("", *_COMPANIONS):
            make_private(self.path.with_name(self.path.name + suffix))

    def _inspect(self) -> None:
        """Read-only checks before WAL mode or a migration writes anything: a foreign or
        damaged file is left exactly as it was."""
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise StoreError(
                    f"{self.label} {self.path} is damaged (the integrity check found: "
                    f"{problems[0][:200]}). Move it aside to start with an empty store, or "
                    "restore a backup."
                )
            tables = {
                str(r[0])
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            }
            if tables and "schema_version" not in tables:
                raise StoreError(
                    f"{self.label} {self.path} is not a pplex-desktop database (it holds the "
                    f"tables {', '.join(sorted(tables)[:5])}). Move it aside to start with an "
                    "empty store, or choose another data folder (--data-dir)."
                )
            if tables:
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                version = int(row[0]) if row else 0
                if version > len(self._migrations):
                    raise StoreError(
                        f"{self.label} {self.path} was written by a newer pplex-desktop; "
                        "upgrade the app or choose another data folder."
                    )
                self._check_schema(conn, version)
        finally:
            conn.close()

    def _damaged(self, exc: sqlite3.Error) -> StoreError:
        reason = str(exc) or type(exc).__name__
        if "readonly" in reason or "read-only" in reason:
            return StoreError(
                f"{self.label} {self.path} cannot be written ({reason}). Give this user write "
                "permission on it and on its folder, or choose another data folder (--data-dir)."
            )
        if "unable to open" in reason:
            return StoreError(
                f"{self.label} {self.path} cannot be opened ({reason}). Check that this user "
                "may read and write it and its folder, or choose another data folder (--data-dir)."
            )
        return StoreError(
            f"{self.label} {self.path} is damaged ({reason}). Move it aside to start with an "
            "empty store, or restore a backup."
        )

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=10.0, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise StoreError(f"The database {self.path} cannot be opened: {exc}.") from None
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives an app crash; only a power cut can lose the last commit.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            # Deleted keys and replaced prefixes are zeroed, not left readable in free pages.
            conn.execute("PRAGMA secure_delete=ON")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection (thread or process) commits."""
        return int(self.connection().execute("PRAGMA data_version").fetchone()[0])

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > len(self._migrations):
                raise StoreError(
                    f"The database {self.path} was written by a newer pplex-desktop; "
                    "upgrade the app or choose another data folder."
                )
            for script in self._migrations[current:]:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (?)", (len(self._migrations),))
            else:
                conn.execute("UPDATE schema_version SET version = ?", (len(self._migrations),))
            self._check_schema(conn, len(self._migrations))

    def _check_schema(self, conn: sqlite3.Connection, version: int) -> None:
        """Every table and column the first ``version`` migrations make must be there."""
        missing: list[str] = []
        for table, columns in _expected_schema(tuple(self._migrations[:version])).items():
            found = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}
            if not found:
                missing.append(f"table {table}")
            missing += [f"{table}.{c}" for c in sorted(columns - found)]
        if missing:
            raise StoreError(
                f"{self.label} {self.path} does not have the tables this version expects "
                f"(missing {', '.join(missing[:5])}). Move it aside to start with an empty store, "
                "or restore a backup."
            )

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` (a store write) on one of this database's worker threads, so the caller's
        loop never waits on a lock; a database locked for longer than SQLite's busy timeout is
        a 503 with a sentence.

        The work counts as in use from the moment it is queued until it ends or, queued still,
        is cancelled: cancelling the caller does not stop a thread that has begun, and close()
        waits for it (closing a connection another thread is using crashes the interpreter).
        """
        with self._idle:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    WORKERS, thread_name_prefix=f"pplex-db-{self.path.stem}"
                )
            self._active += 1
            try:
                future = self._executor.submit(fn, *args, **kwargs)
            except BaseException:
                self._active -= 1
                raise
        future.add_done_callback(self._finished)
        try:
            return await asyncio.wrap_future(future)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise UnavailableError(
                "The gateway's database is locked by another program; try again in a few seconds.",
                retry_after_s=BUSY_RETRY_S,
                code="database_busy",
            ) from None

    def _finished(self, _future: concurrent.futures.Future[Any]) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def close(self, wait_s: float = 15.0) -> None:
        """Close every connection once the work run() started has ended (``wait_s`` at most).

        The store may be used again afterwards: connections and workers open anew.
        """
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=wait_s)
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


@functools.lru_cache(maxsize=8)
def _expected_schema(migrations: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Tables and columns the migrations make, found by running them on an empty database."""
    conn = sqlite3.connect(":memory:")
    try:
        for script in migrations:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            t: frozenset(str(r[1]) for r in conn.execute(f"PRAGMA table_info({t})")) for t in tables
        }
    finally:
        conn.close()
