"""Staging: collect a materialization's pages in a private DuckDB file, then swap them into the warehouse.

The warehouse file is held exclusively by whoever writes to it, and the HTTP phase of a long range can
take minutes, so pages are not written to the warehouse as they arrive. Each page goes, as an Arrow
table registered with DuckDB (no copy into Python rows), into a staging file of its own under
``$STREAM_ASSETS_DATA_DIR/staging/``. Memory is then bounded by one page, not by the answer.

At the end, :meth:`Staging.seal` checks the staged rows in bulk (inside the partition's window; one row
per key: identical copies collapse, copies that differ are refused) and :func:`replace_from_staging`
swaps them into the warehouse in one transaction (delete the window's rows, insert the staged ones),
with :func:`stream_assets.core.warehouse.write_replacing`. A failure anywhere before that commit leaves
the old rows; the staging file is removed on success and on failure, and files left by a killed
process are removed by the next :class:`Staging` that starts (each live file is held by a lock that
dies with its process).

    with Staging(table, key=("sr_key", "ts"), api="Streamroot", endpoint="dna/data/traffic/timeseries",
                 window=window) as staging:
        for page in pages:
            staging.append(page)          # a pyarrow Table / RecordBatch (or anything DuckDB scans)
        staging.seal()                   # checks; raises a typed error naming API and endpoint
        with warehouse.get_connection() as conn:
            rows = replace_from_staging(conn, table, staging, window)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import duckdb
import pyarrow as pa
from filelock import FileLock, Timeout

from stream_assets.core.config import data_dir
from stream_assets.core.errors import ApiPayloadError
from stream_assets.core.warehouse import Table, _window_bounds, as_naive_utc, write_replacing
from stream_assets.core.windows import TimeWindow

STAGED = "staged"
# DuckDB's buffer pool would otherwise keep every staged block cached (up to 80 % of RAM by default);
# past this it spills to the staging folder, which is what keeps memory flat for any answer size.
STAGING_MEMORY_LIMIT = "128MB"

ARROW_TYPES = {
    "VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"), "DATE": pa.date32(),
}


class ConflictingRowsError(ApiPayloadError):
    """An answer holds the same key twice with different values: there is no right row to keep."""

    kind = "conflicting rows"


class RowsOutsideWindowError(ApiPayloadError):
    """An answer holds rows outside the partition asked for; storing them would overwrite another partition."""

    kind = "rows outside the partition"


def staging_dir() -> Path:
    return data_dir() / "staging"


def arrow_schema(table: Table) -> pa.Schema:
    """The table's columns as Arrow types (timestamps naive UTC, as the warehouse stores them)."""
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in table.columns])


def rows_to_arrow(table: Table, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A page of row dicts (e.g. validated pydantic records) as an Arrow table of the table's columns.

    Aware datetimes are converted to naive UTC; missing keys become NULL.
    """
    names = table.column_names
    stamped = {name for name, kind in table.columns if kind == "TIMESTAMP"}
    columns: dict[str, list] = {name: [] for name in names}
    for row in rows:
        for name in names:
            value = row.get(name)
            columns[name].append(as_naive_utc(value) if name in stamped and value is not None else value)
    return pa.table(columns, schema=arrow_schema(table))


def sweep_stale(directory: Path) -> list[Path]:
    """Remove staging files whose process is gone (its lock is free); the files removed."""
    removed = []
    for lock_path in directory.glob("*.duckdb.lock"):
        lock = FileLock(lock_path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            continue  # a live run holds it
        try:
            database = lock_path.with_suffix("")
            for path in (database, Path(f"{database}.wal")):
                if path.exists():
                    path.unlink()
                    removed.append(path)
        finally:
            lock.release()
            lock_path.unlink(missing_ok=True)
    return removed


class Staging:
    """A private staging file for one materialization of ``table`` (a context manager).

    ``key`` names the columns that identify a row; ``api`` and ``endpoint`` name the source in errors;
    ``window`` (None for snapshots) is the partition the rows must fall in. The file is removed when the
    block ends, whatever happened.
    """

    def __init__(self, table: Table, *, key: Sequence[str], api: str, endpoint: str,
                 window: TimeWindow | None = None, directory: Path | None = None) -> None:
        self.table = table
        self.key = tuple(key)
        self.api = api
        self.endpoint = endpoint
        self.window = window
        self.directory = directory or staging_dir()
        self.path: Path | None = None
        self.rows_appended = 0
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock: FileLock | None = None
        self._sealed_rows: int | None = None

    def __enter__(self) -> "Staging":
        self.directory.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.directory)
        self.path = self.directory / f"{self.table.schema}.{self.table.name}.{os.getpid()}.{uuid.uuid4().hex}.duckdb"
        self._lock = FileLock(f"{self.path}.lock", timeout=0)
        self._lock.acquire()
        self._conn = duckdb.connect(str(self.path))
        self._conn.execute(f"SET memory_limit = '{STAGING_MEMORY_LIMIT}'")
        self._conn.execute(f"SET temp_directory = '{self.directory / (self.path.name + '.tmp')}'")
        self._conn.execute("SET preserve_insertion_order = false")
        columns = ", ".join(f'"{name}" {kind}' for name, kind in self.table.columns)
        self._conn.execute(f"CREATE TABLE {STAGED} ({columns})")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, page: Any) -> int:
        """Insert one page (a pyarrow Table or RecordBatch, or anything DuckDB can scan) by column name;
        returns its row count. Columns the table does not have are ignored; missing ones are an error."""
        if self._conn is None:
            raise RuntimeError("append() after seal() or outside the with block")
        columns = ", ".join(f'"{c}"' for c in self.table.column_names)
        self._conn.register("page", page)
        try:
            added = self._conn.execute(f"INSERT INTO {STAGED} ({columns}) SELECT {columns} FROM page").fetchone()[0]
        finally:
            self._conn.unregister("page")
        self.rows_appended += added
        return added

    def seal(self) -> int:
        """Check the staged rows, close the file for writing and return how many distinct rows it holds.

        Raises :class:`RowsOutsideWindowError` for a row outside the window (or without a window value)
        and :class:`ConflictingRowsError` for a key staged twice with different values.
        """
        if self._sealed_rows is not None:
            return self._sealed_rows
        if self._conn is None:
            raise RuntimeError("seal() outside the with block")
        conn = self._conn
        if self.window is not None and self.table.window_column is not None:
            column = f'"{self.table.window_column}"'
            low, high = _window_bounds(self.table, self.window)
            outside, first = conn.execute(
                f"SELECT count(*), min({column}) FROM {STAGED} WHERE {column} IS NULL OR {column} < ? OR {column} >= ?",
                [low, high]).fetchone()
            if outside:
                raise RowsOutsideWindowError(
                    self.api, self.endpoint,
                    f"{outside} row(s) outside partition window {self.window} (first: {first})")
        key = ", ".join(f'"{c}"' for c in self.key)
        conflict = conn.execute(
            f"SELECT {key}, count(*) FROM (SELECT DISTINCT * FROM {STAGED}) GROUP BY {key} HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if conflict:
            shown = ", ".join(f"{name}={value}" for name, value in zip(self.key, conflict))
            raise ConflictingRowsError(
                self.api, self.endpoint, f"{conflict[-1]} different rows for the same key ({shown})")
        distinct = conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT * FROM {STAGED})").fetchone()[0]
        if distinct < self.rows_appended:  # identical copies of a row: keep one
            conn.execute(f"CREATE TABLE distinct_rows AS SELECT DISTINCT * FROM {STAGED}")
            conn.execute(f"DROP TABLE {STAGED}")
            conn.execute(f"ALTER TABLE distinct_rows RENAME TO {STAGED}")
        self._sealed_rows = distinct
        conn.execute("CHECKPOINT")
        conn.close()
        self._conn = None
        return self._sealed_rows

    def close(self) -> None:
        """Drop the staging data (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.path is not None:
            for path in (self.path, Path(f"{self.path}.wal")):
                path.unlink(missing_ok=True)
            tmp = self.directory / (self.path.name + ".tmp")
            if tmp.is_dir():
                for spilled in tmp.iterdir():
                    spilled.unlink(missing_ok=True)
                tmp.rmdir()
        if self._lock is not None:
            self._lock.release()
            Path(self._lock.lock_file).unlink(missing_ok=True)
            self._lock = None


def replace_from_staging(conn: duckdb.DuckDBPyConnection, table: Table, staging: Staging,
                         window: TimeWindow | None) -> int:
    """Make the staged rows the table's rows for ``window`` (the whole table for snapshots) in one
    transaction on the warehouse connection ``conn``; returns the number of rows inserted.

    Seals the staging first (its checks run before the warehouse is touched), then attaches the
    staging file read-only and inserts its rows with ``write_replacing``.
    """
    staging.seal()
    alias = f"staging_{uuid.uuid4().hex[:12]}"
    conn.execute(f"ATTACH '{staging.path}' AS {alias} (READ_ONLY)")
    try:
        staged = conn.sql(f"SELECT * FROM {alias}.{STAGED}")
        return write_replacing(conn, table, staged, window)
    finally:
        conn.execute(f"DETACH {alias}")
