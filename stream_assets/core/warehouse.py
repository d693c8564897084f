"""Warehouse writes: one transaction per partition (delete the window's rows, insert the new ones).

DuckDB lets a single process hold a database file open for writing, and Dagster runs every step in a
process of its own. So assets fetch everything first and open the warehouse only for the write; the
:class:`Warehouse` resource queues writers from every process on a lock file next to the database
(first come, first served) and still backs off if something outside stream_assets holds the file.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import pandas as pd
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBResource
from filelock import FileLock
from pydantic import Field

from stream_assets.core.config import duckdb_path, ducklake_settings
from stream_assets.core.lake import commit_attempts, connect_lake
from stream_assets.core.windows import TimeWindow


@dataclass(frozen=True)
class Table:
    """A warehouse table: ``schema.name``, its columns as (name, DuckDB type), and the column whose value
    places a row in a partition (None for snapshots, which are replaced whole)."""

    schema: str
    name: str
    columns: Sequence[tuple[str, str]]
    window_column: str | None = None

    @property
    def qualified(self) -> str:
        return f'"{self.schema}"."{self.name}"'

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def ddl(self) -> str:
        columns = ", ".join(f'"{name}" {kind}' for name, kind in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.qualified} ({columns})"


class Warehouse(DuckDBResource):
    """The embedded DuckDB warehouse (a dagster-duckdb ``DuckDBResource``), safe for concurrent runs.

    ``database`` defaults to ``$STREAM_ASSETS_DUCKDB_PATH``, else ``$STREAM_ASSETS_DATA_DIR/warehouse.duckdb``.
    """

    database: str = Field(default="", description="DuckDB file; empty means the STREAM_ASSETS_* default")
    lock_timeout_seconds: float = Field(default=900.0, description="How long a writer queues for the file")
    ducklake_catalog: str = Field(default="", description="DuckLake catalog; empty means STREAM_ASSETS_DUCKLAKE_CATALOG")
    ducklake_data_path: str = Field(default="", description="DuckLake data path; empty means STREAM_ASSETS_DUCKLAKE_DATA_PATH")
    lake_commit_attempts: int = Field(default=10, description="Tries of a DuckLake write that conflicts with others")

    @property
    def path(self) -> Path:
        return Path(self.database).resolve() if self.database else duckdb_path()

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
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection: to the DuckLake when one is configured (concurrent writers allowed),
        else to the local file, held exclusively across processes until the block ends."""
        lake = self.lake
        if lake is not None:
            conn = connect_lake(*lake, config=dict(self.connection_config))
            try:
                yield conn
            finally:
                conn.close()
            return
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock", timeout=self.lock_timeout_seconds):
            conn = backoff(
                fn=duckdb.connect,
                retry_on=(duckdb.IOException,),
                kwargs={"database": str(path), "read_only": False, "config": dict(self.connection_config)},
                max_retries=10,
            )
            try:
                yield conn
            finally:
                conn.close()

    def replace(self, table: Table, frame: pd.DataFrame, window: TimeWindow | None = None) -> int:
        """Atomically make ``frame`` the table's rows for ``window`` (or the whole table for snapshots).

        Rows outside the window are refused before anything is written, so a partition never touches
        another's rows. Returns the number of rows inserted.
        """
        frame = conform(table, frame)
        if window is not None:
            _check_inside(table, frame, window)
        for attempt in self._write_attempts(table):
            with attempt, self.get_connection() as conn:
                return write_replacing(conn, table, frame, window)

    def record_history(self, table: Table, frame: pd.DataFrame, key: Sequence[str], seen_at: dt.datetime) -> dict[str, int]:
        """Keep a snapshot as history without duplicates: ``table`` holds one row per version of an entity,
        with ``first_seen``/``last_seen`` columns. A row identical to its entity's latest version only moves
        that version's ``last_seen`` to ``seen_at``; a new or changed row starts a new version.
        Returns how many versions were extended and inserted.
        """
        frame = conform(Table(table.schema, table.name, [c for c in table.columns if c[0] not in ("first_seen", "last_seen")]), frame)
        seen = as_naive_utc(seen_at)
        attributes = [c for c in frame.columns]
        same = " AND ".join(f'h."{c}" IS NOT DISTINCT FROM i."{c}"' for c in attributes)
        key_match = " AND ".join(f'h."{c}" = i."{c}"' for c in key)
        latest = (f'h.last_seen = (SELECT max(l.last_seen) FROM {table.qualified} l WHERE '
                  + " AND ".join(f'l."{c}" = h."{c}"' for c in key) + ")")
        for attempt in self._write_attempts(table):
            with attempt, self.get_connection() as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.schema}"')
                conn.execute(table.ddl())
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


def as_naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def conform(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with exactly the table's columns, timestamps as naive UTC, dates as dates."""
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise ValueError(f"{table.schema}.{table.name}: frame lacks columns {missing}")
    frame = frame[table.column_names].copy()
    for name, kind in table.columns:
        if kind == "TIMESTAMP":
            frame[name] = pd.to_datetime(frame[name], utc=True).dt.tz_localize(None)
        elif kind == "DATE":
            frame[name] = pd.to_datetime(frame[name]).dt.date
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
        raise ValueError(
            f"{table.schema}.{table.name}: {len(outside)} row(s) outside partition window {window} "
            f"(first: {outside[table.window_column].iloc[0]})"
        )


def write_replacing(
    conn: duckdb.DuckDBPyConnection, table: Table, frame: pd.DataFrame, window: TimeWindow | None
) -> int:
    """Delete the window's rows and insert ``frame`` in one transaction, in bulk (a registered view)."""
    columns = ", ".join(f'"{c}"' for c in table.column_names)
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.schema}"')
    conn.execute(table.ddl())
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
