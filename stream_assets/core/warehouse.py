"""Warehouse writes: one transaction per partition (delete the window's rows, insert the new ones).

DuckDB lets a single process hold a database file open for writing, and Dagster runs every step in a
process of its own. So assets fetch everything first and open the warehouse only for the write; the
:class:`Warehouse` resource queues writers from every process on a lock file next to the database
(first come, first served) and still backs off if something outside stream_assets holds the file.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from filelock import FileLock, Timeout
from pydantic import Field

from stream_assets.core.config import duckdb_path, ducklake_settings
from stream_assets.core.instances import LOCK as INSTANCES_LOCK, discard, process_instance
from stream_assets.core.errors import InvalidValueError, LockTimeoutError, RowsOutsideWindowError, WarehouseError
from stream_assets.core.lake import commit_attempts, connect_lake, table_write_lock
from stream_assets.core.validation import check_rows
from stream_assets.core.windows import TimeWindow

if TYPE_CHECKING:
    from stream_assets.core.staging import Staging

# DuckDB's message when another process holds the file: worth waiting for; any other IOException is not.
_HELD_ELSEWHERE = ("could not set lock", "conflicting lock")
# Rows per row group written from our connections (DuckDB's default is 122,880). An insert holds the row group
# it is filling, and compresses it, in memory outside the buffer pool's limit: with Streamtime's JSON `record`
# column a default row group is ~55 MB of text; at 16,384 rows, ~7 MB (see staging.py SWAP_SETTINGS for the
# figures). The size is a property of the attachment, not of the file: row groups already written keep theirs,
# and other readers and writers are unaffected.
ROW_GROUP_ROWS = 16_384
WAREHOUSE_ALIAS = "warehouse"


@dataclass(frozen=True)
class Table:
    """A warehouse table: ``schema.name``, its columns as (name, DuckDB type), the column whose value
    places a row in a partition (None for snapshots, which are replaced whole), its key columns (one
    row per key; empty means the whole row, so only identical copies are recognised) and the columns
    that can never be negative (counts, bytes, durations, views)."""

    schema: str
    name: str
    columns: Sequence[tuple[str, str]]
    window_column: str | None = None
    key: Sequence[str] = ()
    non_negative: Sequence[str] = ()

    def __post_init__(self) -> None:
        unknown = [c for c in (*self.key, *self.non_negative) if c not in self.column_names]
        if unknown:
            raise ValueError(f"{self.schema}.{self.name}: key/non-negative columns {unknown} are not columns")

    @property
    def qualified(self) -> str:
        return f'"{self.schema}"."{self.name}"'

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def ddl(self) -> str:
        columns = ", ".join(f'"{name}" {kind}' for name, kind in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} ({columns})"

    def in_schema(self, schema: str) -> "Table":
        """The same table in another schema (a tenant's: ``streamtime_acme.logged_times``)."""
        return replace(self, schema=schema)


class Warehouse(DuckDBResource):
    """The embedded DuckDB warehouse (a dagster-duckdb ``DuckDBResource``), safe for concurrent runs.

    ``database`` defaults to ``$STREAM_ASSETS_DUCKDB_PATH``, else ``$STREAM_ASSETS_DATA_DIR/warehouse.duckdb``.
    """

    database: str = Field(default="", description="DuckDB file; empty means the STREAM_ASSETS_* default")
    lock_timeout_seconds: float = Field(default=900.0, description="How long a writer queues for the file")
    held_elsewhere_seconds: float = Field(
        default=60.0, description="How long to wait when something outside stream_assets holds the DuckDB file")
    ducklake_catalog: str = Field(default="", description="DuckLake catalog; empty means STREAM_ASSETS_DUCKLAKE_CATALOG")
    ducklake_data_path: str = Field(default="", description="DuckLake data path; empty means STREAM_ASSETS_DUCKLAKE_DATA_PATH")
    lake_commit_attempts: int = Field(default=10, description="Tries of a DuckLake write that conflicts with others")

    @property
    def path(self) -> Path:
        return Path(self.database).resolve() if self.database else duckdb_path()

    @property
    def lock_path(self) -> Path:
        """The writers' queue: a file beside the database, in the same folder."""
        path = self.path
        return path.parent / f"{path.name}.lock"

    def _check_path(self) -> None:
        """Fail at once, naming the setting, for what no amount of waiting fixes."""
        path = self.path
        setting = "Warehouse.database" if self.database else "STREAM_ASSETS_DUCKDB_PATH / STREAM_ASSETS_DATA_DIR"
        if path.is_dir():
            raise WarehouseError(f"the warehouse path {path} is a directory; {setting} must name a DuckDB file "
                                 f"(e.g. {path / 'warehouse.duckdb'})")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create the warehouse folder {path.parent} ({exc.strerror}); check {setting}") from None
        if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK | os.W_OK)):
            raise WarehouseError(f"no permission to write the warehouse {path}; check {setting} and the file's owner")

    @property
    def lake(self) -> tuple[str, str] | None:
        """(catalog, data path) when the warehouse is a DuckLake (see core/lake.py), else None."""
        if self.ducklake_catalog:
            if not self.ducklake_data_path:
                raise ValueError("Warehouse: ducklake_data_path is required with ducklake_catalog")
            return self.ducklake_catalog, self.ducklake_data_path
        return ducklake_settings()

    def _write_attempts(self, table: Table) -> Iterator[AbstractContextManager]:
        """One try for the local file (its writers queue); bounded retries of commit conflicts for a DuckLake."""
        if self.lake is None:
            return iter([nullcontext()])
        return commit_attempts(f"{table.schema}.{table.name}", self.lake_commit_attempts)

    @contextmanager
    def _writing(self, table: Table) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one write of ``table``. Writers of a DuckLake table queue on its cross-host
        lock first (core/lake.py: optimistic commits let two replaces of an empty window both land)."""
        lake = self.lake
        lock = table_write_lock(lake[0], table.qualified, self.lock_timeout_seconds) if lake else nullcontext()
        with lock, self.get_connection() as conn:
            yield conn

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, held exclusively across processes until the block ends.

        To the DuckLake when one is configured (concurrent writers allowed, see core/lake.py). For the local
        file: raises WarehouseError at once for a path that can never work (a directory, no permission) and
        LockTimeoutError when the queue or the file stays busy longer than the configured waits.
        """
        lake = self.lake
        if lake is not None:
            with connect_lake(*lake, config=dict(self.connection_config)) as conn:
                yield conn
            return
        self._check_path()
        lock = FileLock(str(self.lock_path), timeout=self.lock_timeout_seconds)
        try:
            lock.acquire()
        except Timeout:
            raise LockTimeoutError(f"the warehouse write lock {self.lock_path}", self.lock_timeout_seconds,
                                   "another run is writing; raise Warehouse.lock_timeout_seconds if runs queue this long") from None
        try:
            with self._attached() as conn:
                yield conn
        finally:
            lock.release()

    def _attached(self) -> AttachedFile:
        started = time.monotonic()
        wait = 0.1
        while True:
            try:
                return AttachedFile(self.path, dict(self.connection_config))
            except duckdb.IOException as exc:
                text = str(exc).lower()
                if not any(marker in text for marker in _HELD_ELSEWHERE):
                    raise WarehouseError(f"cannot open the warehouse {self.path}: {str(exc).splitlines()[0]}") from None
                if time.monotonic() - started + wait > self.held_elsewhere_seconds:
                    raise LockTimeoutError(f"the DuckDB file {self.path}, held by a process outside stream_assets",
                                           time.monotonic() - started) from None
                time.sleep(wait)
                wait = min(wait * 2, 2.0)

    def replace(self, table: Table, frame: pd.DataFrame, window: TimeWindow | None = None) -> int:
        """Atomically make ``frame`` the table's rows for ``window`` (or the whole table for snapshots).

        Rows outside the window are refused before anything is written, so a partition never touches
        another's rows. Returns the number of rows inserted.
        """
        frame = check_rows(table, conform(table, frame))
        if window is not None:
            _check_inside(table, frame, window)
        for attempt in self._write_attempts(table):
            with attempt, self._writing(table) as conn:
                return write_replacing(conn, table, frame, window)

    def replace_staged(self, table: Table, staging: "Staging", window: TimeWindow | None = None) -> int:
        """Atomically make the rows staged in ``staging`` (see core/staging.py) the table's rows for
        ``window`` (or the whole table for snapshots): the connection, the DuckLake commit retries and the
        swap in one transaction. The staged rows were checked page by page as they came; sealing checks
        keys across pages. Returns the number of rows inserted; on any error the old rows stay."""
        from stream_assets.core.staging import replace_from_staging  # staging builds on this module

        for attempt in self._write_attempts(table):
            with attempt, self._writing(table) as conn:
                return replace_from_staging(conn, table, staging, window)

    def record_history(self, table: Table, frame: pd.DataFrame, key: Sequence[str], seen_at: dt.datetime) -> dict[str, int]:
        """Keep a snapshot as history without duplicates: ``table`` holds one row per version of an entity,
        with ``first_seen``/``last_seen`` columns. A row identical to its entity's latest version only moves
        that version's ``last_seen`` to ``seen_at``; a new or changed row starts a new version.
        Returns how many versions were extended and inserted.
        """
        attributes_table = Table(table.schema, table.name,
                                 [c for c in table.columns if c[0] not in ("first_seen", "last_seen")],
                                 key=tuple(key), non_negative=table.non_negative)
        # One version per entity per poll: identical copies collapse, conflicting ones are refused.
        frame = check_rows(attributes_table, conform(attributes_table, frame))
        seen = as_naive_utc(seen_at)
        attributes = [c for c in frame.columns]
        same = " AND ".join(f'h."{c}" IS NOT DISTINCT FROM i."{c}"' for c in attributes)
        key_match = " AND ".join(f'h."{c}" = i."{c}"' for c in key)
        latest = (f'h.last_seen = (SELECT max(l.last_seen) FROM {table.qualified} l WHERE '
                  + " AND ".join(f'l."{c}" = h."{c}"' for c in key) + ")")
        for attempt in self._write_attempts(table):
            with attempt, self._writing(table) as conn:
                create_or_extend(conn, table)
                conn.execute("BEGIN TRANSACTION")
                try:
                    conn.register("incoming_rows", frame)
                    extended = conn.execute(
                        f"UPDATE {table.qualified} h SET last_seen = ? FROM incoming_rows i WHERE {same} AND {latest}",
                        [seen]).fetchone()[0]
                    columns = ", ".join(f'"{c}"' for c in attributes)
                    inserted = conn.execute(
                        f"INSERT INTO {table.qualified} ({columns}, first_seen, last_seen) "
                        f"SELECT {columns}, ?, ? FROM incoming_rows i WHERE NOT EXISTS "
                        f"(SELECT 1 FROM {table.qualified} h WHERE {key_match} AND h.last_seen = ?)",
                        [seen, seen, seen]).fetchone()[0]
                    conn.unregister("incoming_rows")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return {"versions_extended": int(extended), "versions_inserted": int(inserted)}

    def query(self, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
        with self.get_connection() as conn:
            return conn.execute(sql, list(params)).df()


class AttachedFile:
    """A read-write connection to the DuckDB file at ``path``, in use (``USE``) under the alias ``warehouse``,
    with row groups of :data:`ROW_GROUP_ROWS` for what it writes; spills go beside the file, as with a plain
    ``duckdb.connect(path)``. Attaches at once (raising ``duckdb.IOException`` when another process holds the
    file); as a context manager, gives the connection and, at the end, rolls back whatever transaction was
    left open, checkpoints and releases the file (other processes can open it)."""

    def __init__(self, path: Path, config: dict[str, object]) -> None:
        config.setdefault("temp_directory", f"{path}.tmp")
        attach = "ATTACH '" + str(path).replace("'", "''") + f"' AS {WAREHOUSE_ALIAS} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        self._key, instance = process_instance(config)
        self.conn = instance.cursor()
        try:
            try:
                self.conn.execute(attach)
            except duckdb.BinderException:  # still attached: an earlier detach failed; start on a new instance
                self.conn.close()
                discard(self._key)
                self._key, instance = process_instance(config)
                self.conn = instance.cursor()
                self.conn.execute(attach)
            self.conn.execute(f"USE {WAREHOUSE_ALIAS}")
        except BaseException:
            self.conn.close()
            raise
        self._instance = instance

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.conn

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()  # rolls back a transaction left open
        try:
            with INSTANCES_LOCK:
                self._instance.execute(f"DETACH {WAREHOUSE_ALIAS}")
        except duckdb.Error:
            discard(self._key)


def as_naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with exactly the table's columns, timestamps as naive UTC, dates as dates."""
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise ValueError(f"{table.schema}.{table.name}: frame lacks columns {missing}")
    frame = frame[table.column_names].copy()
    for name, kind in table.columns:
        try:
            if kind == "TIMESTAMP":
                frame[name] = pd.to_datetime(frame[name], utc=True).dt.tz_localize(None)
            elif kind == "DATE":
                frame[name] = pd.to_datetime(frame[name]).dt.date
        except (ValueError, OverflowError, TypeError) as exc:  # OutOfBoundsDatetime is a ValueError
            raise InvalidValueError(table.schema, table.name, name,
                                    f"not a representable {kind.lower()} ({type(exc).__name__})") from None
    return frame


def _window_bounds(table: Table, window: TimeWindow) -> tuple[object, object]:
    kind = dict(table.columns)[table.window_column]
    if kind == "DATE":
        # A day belongs to the window when the window covers its midnight.
        first = window.start.date() if window.start.time() == dt.time() else window.start.date() + dt.timedelta(days=1)
        return first, (window.end - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1)
    return window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)


def _check_inside(table: Table, frame: pd.DataFrame, window: TimeWindow) -> None:
    if table.window_column is None or frame.empty:
        return
    low, high = _window_bounds(table, window)
    values = frame[table.window_column]
    outside = frame[(values < low) | (values >= high)]
    if not outside.empty:
        raise RowsOutsideWindowError(
            table.schema, table.name, table.window_column,
            f"{len(outside)} row(s) outside partition window {window} (first: {outside[table.window_column].iloc[0]})",
        )


def create_or_extend(conn: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Create ``table`` (and its schema) if missing, and add the columns an existing copy lacks: a column
    added to a table's definition (``streamone.items.archived``, say) appears in a warehouse written before,
    NULL in the rows already there. Only missing columns are altered, so an up-to-date table (or a DuckLake
    one) sees no schema change."""
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.schema}"')
    conn.execute(table.ddl())
    present = {column[0] for column in conn.execute(f"SELECT * FROM {table.qualified} LIMIT 0").description}
    for name, kind in table.columns:
        if name not in present:
            conn.execute(f'ALTER TABLE {table.qualified} ADD COLUMN IF NOT EXISTS "{name}" {kind}')


def write_replacing(
    conn: duckdb.DuckDBPyConnection, table: Table, frame: pd.DataFrame, window: TimeWindow | None
) -> int:
    """Delete the window's rows and insert ``frame`` in one transaction, in bulk (a registered view)."""
    columns = ", ".join(f'"{c}"' for c in table.column_names)
    create_or_extend(conn, table)
    conn.execute("BEGIN TRANSACTION")
    try:
        if window is None or table.window_column is None:
            conn.execute(f"DELETE FROM {table.qualified}")
        else:
            low, high = _window_bounds(table, window)
            conn.execute(
                f'DELETE FROM {table.qualified} WHERE "{table.window_column}" >= ? AND "{table.window_column}" < ?',
                [low, high],
            )
        conn.register("incoming_rows", frame)
        conn.execute(f"INSERT INTO {table.qualified} ({columns}) SELECT {columns} FROM incoming_rows")
        conn.unregister("incoming_rows")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(frame)
