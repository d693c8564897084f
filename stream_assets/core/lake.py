"""The warehouse as a DuckLake, for several hosts: a catalog in Postgres, Parquet files in a shared folder.

Set ``STREAM_ASSETS_DUCKLAKE_CATALOG`` (e.g. ``postgres:dbname=lake host=db user=u password=p``) and
``STREAM_ASSETS_DUCKLAKE_DATA_PATH`` (a folder every host mounts, or an object-store URL). Each warehouse
connection is then an in-memory DuckDB that attaches the lake and ``USE``s it, so the same ``schema.table``
names, the same one-transaction partition replace and the same history writes work unchanged, from any
number of processes and hosts at once: DuckLake commits are optimistic. Two writers that touch the same
table in overlapping transactions make the later commit fail with a conflict; the whole write is then
retried (:func:`commit_attempts`) a bounded number of times before :class:`LakeCommitConflict`.

Optimistic commits do not catch everything: two writers replacing a window that holds no rows yet both
delete nothing and insert, so both commit and the window holds every row twice. Writers of one table
therefore take :func:`table_write_lock` around the whole replace (a Postgres advisory lock in the catalog's
own database, so every host that can reach the lake queues on it; other catalogs, which live on one
host, use the shared state's lock). The lock is per table, not per window: a ranged run's window overlaps
the day windows inside it. Writes are the short end of a run (fetching happens before), so they queue.

Extensions: DuckDB downloads ``ducklake`` and ``postgres_scanner`` on first use, which an offline host cannot.
The PyPI packages ``duckdb-extension-ducklake`` and ``duckdb-extension-postgres-scanner`` ship the extension
files for one DuckDB version (hence the exact DuckDB pin in pyproject), and they are loaded from there by
path when present; otherwise by name (``LOAD``, then ``INSTALL`` + ``LOAD``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import random
import re
import time
from pathlib import Path
from typing import Iterator, Mapping

import duckdb

from stream_assets.core.errors import StreamAssetsError
from stream_assets.core.instances import process_instance

LAKE_ALIAS = "stream_assets_lake"
# (extension name, the PyPI package shipping its file)
POSTGRES_EXTENSION = ("postgres_scanner", "duckdb_extension_postgres_scanner")
DUCKLAKE_EXTENSION = ("ducklake", "duckdb_extension_ducklake")


class LakeError(StreamAssetsError):
    """The DuckLake warehouse could not be opened or written."""


class LakeCommitConflict(LakeError):
    """A write kept conflicting with concurrent writers to the same table after every allowed attempt."""


def redact(text: str) -> str:
    """``text`` without passwords (``password=...`` pairs, ``user:password@`` in URLs)."""
    text = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", str(text), flags=re.IGNORECASE)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def packaged_extension(name: str, package: str) -> Path | None:
    """The extension file a PyPI package ships for the running DuckDB version, if installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    return path if path.is_file() else None


def load_extension(conn: duckdb.DuckDBPyConnection, name: str, package: str) -> str:
    """Load extension ``name``: the packaged file if present, else by name (installing it if needed).
    Returns how it was loaded."""
    path = packaged_extension(name, package)
    if path is not None:
        conn.execute(f"LOAD '{path}'")
        return str(path)
    try:
        conn.execute(f"LOAD {name}")
    except duckdb.Error:
        conn.execute(f"INSTALL {name}")
        conn.execute(f"LOAD {name}")
    return name


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Each connection is a cursor of the process's DuckDB for these settings (core/instances.py), with the
# extensions loaded once (~0.45 s each time otherwise) and the lake attached under an alias of its own,
# detached when the connection closes (~0.08 s).
_ALIASES = itertools.count()


def _instance(postgres: bool, config: Mapping[str, object]) -> duckdb.DuckDBPyConnection:
    def load_extensions(instance: duckdb.DuckDBPyConnection) -> None:
        if postgres:
            load_extension(instance, *POSTGRES_EXTENSION)
        load_extension(instance, *DUCKLAKE_EXTENSION)

    return process_instance(config, "lake+postgres" if postgres else "lake", load_extensions)[1]


class LakeConnection:
    """A connection with the lake attached and in use (``USE``); as a context manager, gives the DuckDB
    connection and detaches the lake at the end (``close()`` does the same)."""

    def __init__(self, instance: duckdb.DuckDBPyConnection, alias: str) -> None:
        self.conn, self._instance, self.alias = instance.cursor(), instance, alias

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.conn

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()  # rolls back a transaction left open
        try:
            self._instance.execute(f"DETACH DATABASE IF EXISTS {self.alias}")
        except duckdb.Error:
            pass  # the attachment dies with the instance; nothing else uses this alias


def connect_lake(catalog: str, data_path: str, config: Mapping[str, object] | None = None,
                 attempts: int = 5) -> LakeConnection:
    """A connection with the lake attached and in use (see :class:`LakeConnection`).

    Attaching retries a few times: the first processes to attach a new catalog race to create its tables.
    Errors never carry the catalog's password."""
    for attempt in range(1, attempts + 1):
        connection = None
        try:
            instance = _instance(catalog.startswith("postgres:"), config or {})
            connection = LakeConnection(instance, f"{LAKE_ALIAS}_{next(_ALIASES)}")
            connection.conn.execute(f"ATTACH {_quoted('ducklake:' + catalog)} AS {connection.alias} "
                                    f"(DATA_PATH {_quoted(data_path)})")
            connection.conn.execute(f"USE {connection.alias}")
            return connection
        except duckdb.Error as error:
            if connection is not None:
                connection.close()
            if attempt == attempts:
                raise LakeError(f"cannot open the DuckLake {redact(catalog)!r} (data path {data_path!r}): "
                                f"{redact(error)}") from None
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    raise AssertionError("unreachable")


def table_write_lock(catalog: str, table: str, timeout: float):
    """A context manager holding the cross-host write lock of ``table`` in the lake ``catalog``; waits at
    most ``timeout`` seconds, then raises :class:`~stream_assets.core.state.SharedStateTimeout`."""
    from stream_assets.core.state import advisory_lock, shared_state

    name = f"ducklake-write:{table}"
    what = f"the other writer of DuckLake table {table}"
    if catalog.startswith("postgres:"):
        return advisory_lock(catalog.removeprefix("postgres:"), name, timeout, what)
    digest = hashlib.sha256(catalog.encode()).hexdigest()[:16]  # the catalog string may hold a password
    return shared_state(timeout).hold(f"{name}:{digest}", timeout, what)


def commit_conflict(error: BaseException | None) -> BaseException | None:
    """The DuckLake commit conflict (another transaction changed the same table or schema first) behind
    ``error``, if any. It may sit in the chain: a ``ROLLBACK`` after a failed ``COMMIT`` raises "no transaction
    is active" while handling it."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, duckdb.TransactionException) and (
                "conflict" in str(error).lower() or "Failed to commit DuckLake transaction" in str(error)):
            return error
        error, seen = error.__context__, seen + 1
    return None


class _Attempt:
    """One try of a write: swallows a commit conflict unless it is the last try, which raises the typed error."""

    def __init__(self, what: str, number: int, attempts: int) -> None:
        self.what, self.number, self.attempts = what, number, attempts
        self.succeeded = False

    def __enter__(self) -> "_Attempt":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            self.succeeded = True
            return False
        conflict = commit_conflict(error)
        if conflict is None:
            return False
        if self.number < self.attempts:
            return True
        raise LakeCommitConflict(
            f"{self.what}: DuckLake commit still conflicting with concurrent writers after {self.attempts} attempts "
            f"(last: {redact(' '.join(str(conflict).split()))[:300]})") from None


def commit_attempts(what: str, attempts: int) -> Iterator[_Attempt]:
    """``for attempt in commit_attempts("schema.table", 10): with attempt: <the whole write>; return``.

    A try whose commit conflicts is swallowed, and after a random, growing pause (at most 2 s) the next try
    runs the whole write again on fresh data; the last try raises :class:`LakeCommitConflict` instead.
    The block must leave the loop (``return``/``break``) once it succeeds."""
    for number in range(1, attempts + 1):
        attempt = _Attempt(what, number, attempts)
        yield attempt
        if attempt.succeeded:
            return
        time.sleep(random.uniform(0.0, min(2.0, 0.05 * 2**number)))
