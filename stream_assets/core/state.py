"""State shared by every process of a deployment (runs, steps, sensors, schedules, backfills).

Two backends behind one interface (:class:`SharedState`), picked by :func:`shared_state` from the environment:

- default (``STREAM_ASSETS_STATE_URL`` unset): a small SQLite file in ``STREAM_ASSETS_DATA_DIR``. SQLite's
  write lock (``BEGIN IMMEDIATE``) makes each read-modify-write atomic across processes, and lock files next
  to it hold named locks. Right for one machine.
- ``STREAM_ASSETS_STATE_URL=postgresql://...``: tables in the schema ``stream_assets`` of that database
  (created on first use), one atomic upsert per counter step, and named locks as Postgres *session* advisory
  locks, which the server releases when the holder's connection ends, so a process killed mid-request never
  blocks the others. Each process keeps a small psycopg pool. Right for several hosts.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from filelock import FileLock, Timeout

from stream_assets.core.config import data_dir, state_url
from stream_assets.core.errors import LockTimeoutError

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

SCHEMA = "stream_assets"
MEMO_KEPT_SECONDS = 7 * 86400  # memos older than this are deleted (each run leaves one; none is read that late)


class SharedStateTimeout(LockTimeoutError):
    """A bounded wait on the shared state ended: the message says what was waited for, where and how long."""

    def __init__(self, what: str, waited_seconds: float) -> None:
        super().__init__(what, waited_seconds)


def state_path() -> Path:
    return data_dir() / "state.sqlite"


class SharedState(Protocol):
    """Named counters and named locks shared by every process (and, with Postgres, every host)."""

    timeout: float
    where: str  # where the state lives, for messages (never a password)

    def advance(self, name: str, at_least: int) -> int:
        """Set counter ``name`` to ``max(at_least, last + 1)`` and return it: strictly increasing forever."""
        ...

    def peek(self, name: str) -> int | None: ...

    def hold(self, name: str, timeout: float, what: str):
        """A context manager holding lock ``name`` across processes until the block ends; waits at most
        ``timeout`` seconds, then raises :class:`SharedStateTimeout` naming ``what`` it waited for."""
        ...

    def remember(self, name: str, value: str) -> None:
        """Keep ``value`` under ``name`` for every process (a memo: best effort, never raises)."""
        ...

    def recall(self, name: str, max_age_seconds: float) -> str | None:
        """The value last remembered under ``name`` if it is at most ``max_age_seconds`` old (None otherwise,
        and when the state cannot be read: a memo saves requests, it is never needed)."""
        ...


_FROM_ENVIRONMENT = object()


def shared_state(timeout: float = 60.0, *, url: "str | None | object" = _FROM_ENVIRONMENT,
                 folder: Path | None = None) -> SharedState:
    """The shared state at ``url`` (Postgres), else the SQLite file ``state.sqlite`` in ``folder``. Resources
    pass both; called without them (scripts, tests), the deployment's ``STREAM_ASSETS_STATE_URL`` and data
    dir are read."""
    if url is _FROM_ENVIRONMENT:
        url = state_url()
    if url:
        return PostgresState(str(url), timeout=timeout)
    return SqliteState(folder / "state.sqlite" if folder is not None else None, timeout=timeout)


# --- SQLite (one machine) -------------------------------------------------------------------------------


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


class SqliteState:
    """Named counters in one SQLite file and named lock files beside it, safe under concurrent processes
    and threads of one machine."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0) -> None:
        self.path = Path(path) if path else state_path()
        self.timeout = timeout
        self.where = str(self.path)
        self._locks: dict[str, FileLock] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS memos (name TEXT PRIMARY KEY, value TEXT NOT NULL, "
                         "written_at REAL NOT NULL)")

    def _transaction(self):
        return sqlite_transaction(self.path, self.timeout)

    def advance(self, name: str, at_least: int) -> int:
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            value = at_least if row is None else max(at_least, row[0] + 1)
            conn.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
            return value

    def peek(self, name: str) -> int | None:
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            return None if row is None else row[0]

    def remember(self, name: str, value: str) -> None:
        try:
            with self._transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO memos (name, value, written_at) VALUES (?, ?, ?)",
                             (name, value, time.time()))
                conn.execute("DELETE FROM memos WHERE written_at < ?", (time.time() - MEMO_KEPT_SECONDS,))
        except (sqlite3.Error, OSError, LockTimeoutError):
            pass

    def recall(self, name: str, max_age_seconds: float) -> str | None:
        try:
            with self._transaction() as conn:
                row = conn.execute("SELECT value FROM memos WHERE name = ? AND written_at >= ?",
                                   (name, time.time() - max_age_seconds)).fetchone()
        except (sqlite3.Error, OSError, LockTimeoutError):
            return None
        return row[0] if row and row[0] else None

    @contextmanager
    def hold(self, name: str, timeout: float, what: str) -> Iterator[None]:
        # `rid:<digest>` -> `rid-<digest>.lock` next to the state file; the OS drops it when its holder dies.
        lock = self._locks.setdefault(name, FileLock(str(self.path.with_name(f"{name.replace(':', '-')}.lock"))))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise SharedStateTimeout(f"{what} (lock {name!r} in {self.where})", timeout) from None
        try:
            yield
        finally:
            lock.release()


# --- Postgres (several hosts) -----------------------------------------------------------------------------

_pools: dict[tuple[int, str], "ConnectionPool"] = {}
_tables_ready: set[tuple[int, str, str]] = set()
_pools_guard = threading.Lock()
_thread_locks: dict[tuple[int, str, str], threading.Lock] = {}


def describe_postgres(url: str) -> str:
    """``Postgres user@host:port/db`` for messages: the URL without its password or options."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # an unparsable URL is reported by the driver; never echo it here
        return "Postgres (unparsable STREAM_ASSETS_STATE_URL)"
    return (f"Postgres {parts.get('user', '')}@{parts.get('host', '')}:{parts.get('port', 5432)}"
            f"/{parts.get('dbname', '')}")


def postgres_pool(url: str, timeout: float = 60.0) -> "ConnectionPool":
    """This process's small pool of autocommit connections to ``url`` (one per URL and process: a forked
    child opens its own). The first call waits up to ``timeout`` seconds for a first connection."""
    from psycopg_pool import ConnectionPool, PoolTimeout

    key = (os.getpid(), url)
    with _pools_guard:
        pool = _pools.get(key)
        if pool is None:
            pool = ConnectionPool(
                url, min_size=1, max_size=4, timeout=timeout, open=True, name="stream_assets",
                kwargs={"autocommit": True, "application_name": "stream_assets"},
                check=ConnectionPool.check_connection,
            )
            try:
                pool.wait(timeout=timeout)
            except PoolTimeout:
                pool.close()
                raise SharedStateTimeout(f"a first connection to {describe_postgres(url)}", timeout) from None
            _pools[key] = pool
            atexit.register(pool.close)
    return pool


@contextmanager
def postgres_connection(url: str, timeout: float = 60.0):
    """A pooled autocommit connection; waiting longer than ``timeout`` for one raises SharedStateTimeout."""
    from psycopg_pool import PoolTimeout

    pool = postgres_pool(url, timeout)
    try:
        conn = pool.getconn(timeout=timeout)
    except PoolTimeout:
        raise SharedStateTimeout(f"a free connection to {describe_postgres(url)}", timeout) from None
    try:
        yield conn
    finally:
        pool.putconn(conn)  # the pool discards a broken connection, or rolls back one left in a transaction


def create_tables(url: str, name: str, statements: Sequence[str], timeout: float = 60.0, *,
                  schema: str = SCHEMA) -> None:
    """Run ``statements`` (``CREATE ... IF NOT EXISTS``) once per process, in one transaction under a
    transaction advisory lock: concurrent first uses on several hosts would otherwise race on the catalog."""
    key = (os.getpid(), url, f"{schema}.{name}")
    if key in _tables_ready:
        return
    with postgres_connection(url, timeout) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('stream_assets:ddl', 0))")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for statement in statements:
            conn.execute(statement)
    _tables_ready.add(key)


class PostgresState:
    """Named counters in ``stream_assets.counters`` and named session advisory locks, in one Postgres
    database shared by every host."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.url = url
        self.timeout = timeout
        self.where = describe_postgres(url)
        create_tables(url, "counters", [
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.memos (name TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "written_at DOUBLE PRECISION NOT NULL)",
        ], timeout)

    def advance(self, name: str, at_least: int) -> int:
        with postgres_connection(self.url, self.timeout) as conn:
            return conn.execute(
                f"INSERT INTO {SCHEMA}.counters AS c (name, value) VALUES (%s, %s) ON CONFLICT (name) "
                "DO UPDATE SET value = GREATEST(EXCLUDED.value, c.value + 1) RETURNING value",
                (name, at_least)).fetchone()[0]

    def peek(self, name: str) -> int | None:
        with postgres_connection(self.url, self.timeout) as conn:
            row = conn.execute(f"SELECT value FROM {SCHEMA}.counters WHERE name = %s", (name,)).fetchone()
            return None if row is None else row[0]

    def hold(self, name: str, timeout: float, what: str):
        return advisory_lock(self.url, name, timeout, what)

    def remember(self, name: str, value: str) -> None:
        import psycopg

        try:
            with postgres_connection(self.url, self.timeout) as conn:
                conn.execute(f"INSERT INTO {SCHEMA}.memos (name, value, written_at) VALUES (%s, %s, %s) "
                             "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, written_at = EXCLUDED.written_at",
                             (name, value, time.time()))
                conn.execute(f"DELETE FROM {SCHEMA}.memos WHERE written_at < %s", (time.time() - MEMO_KEPT_SECONDS,))
        except (psycopg.Error, LockTimeoutError):
            pass

    def recall(self, name: str, max_age_seconds: float) -> str | None:
        import psycopg

        try:
            with postgres_connection(self.url, self.timeout) as conn:
                row = conn.execute(f"SELECT value FROM {SCHEMA}.memos WHERE name = %s AND written_at >= %s",
                                   (name, time.time() - max_age_seconds)).fetchone()
        except (psycopg.Error, LockTimeoutError):
            return None
        return row[0] if row and row[0] else None


@contextmanager
def advisory_lock(url: str, name: str, timeout: float, what: str) -> Iterator[None]:
    """Hold the session advisory lock ``name`` in the Postgres database at ``url`` (a URL or libpq
    ``key=value`` string) until the block ends. The server releases it when the holder's connection ends,
    so a killed holder never blocks the others. Waits at most ``timeout`` seconds, then raises
    :class:`SharedStateTimeout` naming ``what`` it waited for and where (without a password)."""
    import psycopg

    def timed_out() -> SharedStateTimeout:
        return SharedStateTimeout(f"{what} (lock {name!r} in {describe_postgres(url)})", timeout)

    deadline = time.monotonic() + timeout
    # Threads of this process queue here first, so that each process waits on Postgres with one connection.
    with _pools_guard:
        local = _thread_locks.setdefault((os.getpid(), url, name), threading.Lock())
    if not local.acquire(timeout=timeout):
        raise timed_out()
    try:
        with postgres_connection(url, max(deadline - time.monotonic(), 0.1)) as conn:
            left_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{left_ms}ms",))
            try:
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"{SCHEMA}:{name}",))
            except psycopg.errors.LockNotAvailable:
                raise timed_out() from None
            finally:
                conn.execute("RESET lock_timeout")
            try:
                yield
            finally:
                try:
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (f"{SCHEMA}:{name}",))
                except psycopg.OperationalError:
                    pass  # the connection is gone, and with it the lock
    finally:
        local.release()


# --- StreamAPI's request ids ----------------------------------------------------------------------------


class RequestIds:
    """Strictly increasing request ids (StreamAPI's ``rid``) for one API key, across every process and host.

    :meth:`issue` hands out ``max(now in ms, last + 1)`` and keeps a per-key lock until the block ends,
    so the request carrying it is answered before any other process takes the next id: the server sees
    the ids in the order they were issued, not just unique ones.
    """

    def __init__(self, key: str, state: SharedState | None = None) -> None:
        self.state = state or shared_state()
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]  # the key itself stays out of names
        self.name = f"rid:{digest}"

    @contextmanager
    def issue(self) -> Iterator[int]:
        with self.state.hold(self.name, self.state.timeout * 5, "the StreamAPI request in flight with the previous rid"):
            yield self.state.advance(self.name, int(time.time() * 1000))

    def last(self) -> int | None:
        return self.state.peek(self.name)


def close_postgres_pools(url: str | None = None) -> None:
    """Close this process's pools (to ``url`` only, if given), e.g. before the database is dropped."""
    with _pools_guard:
        for key in [k for k in _pools if url is None or k[1] == url]:
            _pools.pop(key).close()
        _tables_ready.difference_update({k for k in _tables_ready if url is None or k[1] == url})
