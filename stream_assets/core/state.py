"""State shared by every process of a deployment (runs, steps, sensors, schedules, backfills).

A small SQLite file in ``STREAM_ASSETS_DATA_DIR`` holds it: SQLite's write lock (``BEGIN IMMEDIATE``)
makes each read-modify-write atomic across processes, and the file survives restarts. A deployment
spanning several hosts needs a networked store instead (Postgres, Redis) behind the same methods.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from stream_assets.core.config import data_dir
from stream_assets.core.errors import LockTimeoutError


def state_path() -> Path:
    return data_dir() / "state.sqlite"


@contextmanager
def sqlite_transaction(path: Path, timeout: float) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes SQLite's lock up front (``BEGIN IMMEDIATE``), so that a
    read-modify-write inside it is atomic across processes; committed on success, rolled back on error.
    A lock held longer than ``timeout`` raises LockTimeoutError naming the file."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower():
                raise
            raise LockTimeoutError(f"the shared state file {path} (another process holds its write lock)", timeout) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


class SharedState:
    """Named counters in one SQLite file, safe under concurrent processes and threads."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0) -> None:
        self.path = Path(path) if path else state_path()
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    def _transaction(self):
        return sqlite_transaction(self.path, self.timeout)

    def advance(self, name: str, at_least: int) -> int:
        """Set counter ``name`` to ``max(at_least, last + 1)`` and return it: strictly increasing forever."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            value = at_least if row is None else max(at_least, row[0] + 1)
            conn.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
            return value

    def peek(self, name: str) -> int | None:
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            return None if row is None else row[0]


class RequestIds:
    """Strictly increasing request ids (StreamAPI's ``rid``) for one API key, across every process.

    :meth:`issue` hands out ``max(now in ms, last + 1)`` and keeps a per-key lock until the block ends,
    so the request carrying it is answered before any other process takes the next id: the server sees
    the ids in the order they were issued, not just unique ones.
    """

    def __init__(self, key: str, state: SharedState | None = None) -> None:
        self.state = state or SharedState()
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]  # the key itself stays out of file names
        self.name = f"rid:{digest}"
        self._lock = FileLock(str(self.state.path.with_name(f"rid-{digest}.lock")), timeout=self.state.timeout * 5)

    @contextmanager
    def issue(self) -> Iterator[int]:
        try:
            self._lock.acquire()
        except Timeout:
            raise LockTimeoutError(f"the StreamAPI request-id lock {self._lock.lock_file}", self._lock.timeout,
                                   "another process keeps a StreamAPI request open") from None
        try:
            yield self.state.advance(self.name, int(time.time() * 1000))
        finally:
            self._lock.release()

    def last(self) -> int | None:
        return self.state.peek(self.name)
