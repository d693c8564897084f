"""Staging: collect a materialization's pages apart from the warehouse, then swap them in at once.

The warehouse file is held exclusively by whoever writes to it, and the HTTP phase of a long range can
take minutes, so pages are not written to the warehouse as they arrive. Each page, an Arrow table, is
checked (window; keys unique within it) and kept as it is; once the pages outgrow a memory budget
(4 MiB) they all go, written by pyarrow as Parquet, to a folder of the run's own under
``$STREAM_ASSETS_DATA_DIR/staging/``. Memory is then bounded by the budget plus one page, whatever the
size of the answer, and no Python object is made per row.

At the end, :meth:`Staging.seal` checks keys across pages (identical copies collapse, copies that differ
are refused; pages over disjoint key ranges need no query) and :func:`replace_from_staging` swaps the
rows into the warehouse in one transaction with :func:`stream_assets.core.warehouse.write_replacing`
(delete the window's rows, insert the staged ones: the Arrow pages registered with DuckDB, or the
Parquet files read by DuckDB). A failure anywhere before that commit leaves the old rows. The folder is
removed on success and on failure; one left by a killed process is removed by the next
:class:`Staging` that starts (each live folder is held by a file lock that dies with its process).

    with Staging(table, api="Streamroot", endpoint="dna/data/traffic/timeseries", window=window) as staging:
        for page in pages:
            staging.append(page)          # a pyarrow Table or RecordBatch, checked by core/validation.py
        rows = warehouse.replace_staged(table, staging, window)   # seals (checks), then swaps

Why not a staging DuckDB file: creating, checkpointing and attaching one costs ~30 ms per
materialization and inserting a page into it ~20 ms, against ~4 ms to write a page as Parquet and
nothing to hold it (measured on a 17,856-row page).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from stream_assets.core.config import data_dir
from stream_assets.core.errors import DuplicateKeyError, RowsOutsideWindowError
from stream_assets.core.validation import check_page, keys_unique
from stream_assets.core.warehouse import Table, _window_bounds, as_naive_utc, write_replacing
from stream_assets.core.windows import TimeWindow

# Pages are held in memory up to this many bytes, then all go to a Parquet file: memory stays bounded by the
# budget plus one page, whatever the answer's size. A 31-day Streamroot answer (~1.5 MB) stays in memory; a
# 90-day timeseries (~4 MB) or a Streamtime search past ~10,000 records spills (~4 ms per page written).
MEMORY_BUDGET = 4 * 1024 * 1024
# DuckDB's settings during the swap of spilled pages, which keep the process's memory flat whatever the answer's size
# (bench/ingest.py: a 1 M-record Streamtime answer peaked ~220 MB above the pages with DuckDB's defaults, ~40 MB
# with these): a small buffer pool (DuckDB spills past it to the warehouse's temp folder); one thread (each
# fills a row group of its own); one row group buffered before it is written, not five; no cache of the staged
# Parquet file, which is read once; and no insertion order to keep, since the staged order carries no meaning.
# Row groups are small too (core/warehouse.py ROW_GROUP_ROWS). Swap time is unchanged on this machine. An answer
# whose row group does not fit (records of tens of KB each) swaps again, with the connection's own limit.
SWAP_MEMORY_MB = 16
SWAP_SETTINGS = {"threads": "1", "write_buffer_row_group_count": "1", "enable_external_file_cache": "false",
                 "preserve_insertion_order": "false"}
# For checks on a private connection: DuckDB's default is 80 % of RAM; past this it spills to the staging folder.
STAGING_MEMORY_LIMIT = "128MB"

ARROW_TYPES = {
    "VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"), "DATE": pa.date32(),
    "JSON": pa.string(),  # text that DuckDB casts to JSON on insert
}


@dataclass(frozen=True)
class Written:
    """What a materialization wrote: the number of rows, the first rows (a preview for metadata) and some
    columns of every row (the window column for per-partition counts, keys for checks), not the rest."""

    rows: int
    preview: pd.DataFrame
    columns: pd.DataFrame


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
    """Remove staging folders whose process is gone (their lock is free); the folders removed."""
    removed = []
    for lock_path in directory.glob("*.lock"):
        lock = FileLock(lock_path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            continue  # a live run holds it
        try:
            folder = lock_path.with_suffix("")
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        finally:
            lock.release()
            lock_path.unlink(missing_ok=True)
    return removed


class Staging:
    """A private staging folder for one materialization of ``table`` (a context manager).

    ``key`` names the columns that identify a row (default: the table's key, else the whole row); ``api``
    and ``endpoint`` name the source in errors (default: the table's schema and name); ``window`` (None
    for snapshots) is the partition the rows must fall in. Each page is checked by the warehouse's own
    rules (:func:`stream_assets.core.validation.check_page`) as it is appended. Pages are held as Arrow
    tables up to ``memory_budget`` bytes; past it, they all go to one Parquet file in the folder, a row
    group per page (no Python object per row). The folder is removed when the block ends, whatever happened.
    """

    def __init__(self, table: Table, *, key: Sequence[str] | None = None, api: str | None = None,
                 endpoint: str | None = None, window: TimeWindow | None = None, directory: Path | None = None,
                 memory_budget: int = MEMORY_BUDGET) -> None:
        self.table = table
        self.key = tuple(key or table.key or table.column_names)
        self.api = api or table.schema
        self.endpoint = endpoint or table.name
        self.window = window
        self.directory = directory or staging_dir()
        self.schema = arrow_schema(table)
        self.path: Path | None = None  # the folder of this run's pages
        self.rows_appended = 0
        self.files: list[Path] = []
        self.memory_budget = memory_budget
        self._held: list[pa.Table] = []  # pages kept in memory until they outgrow the budget
        self._held_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._lock: FileLock | None = None
        self._sealed_rows: int | None = None
        self._pages: list[tuple[bool, dict[str, tuple[Any, Any]]]] = []  # per page: keys unique, key ranges

    def __enter__(self) -> "Staging":
        self.directory.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.directory)
        self.path = self.directory / f"{self.table.schema}.{self.table.name}.{os.getpid()}.{uuid.uuid4().hex}"
        self._lock = FileLock(f"{self.path}.lock", timeout=0)
        self._lock.acquire()
        self.path.mkdir()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, page: pa.Table | pa.RecordBatch) -> int:
        """Stage one page (an Arrow table or record batch holding at least the table's columns, in any
        order; others are ignored); returns the number of rows staged. Types are cast to the table's,
        safely: a value that does not fit is an error, never a silent change. The page then passes
        :func:`~stream_assets.core.validation.check_page` (finite, non-negative, in range, keys present;
        identical copies of a key collapse, different ones raise DuplicateKeyError), and
        :class:`RowsOutsideWindowError` is raised for a row outside the window (or without a window
        value): nothing of another partition is staged."""
        if self.path is None or self._sealed_rows is not None:
            raise RuntimeError("append() after seal() or outside the with block")
        if isinstance(page, pa.RecordBatch):
            page = pa.Table.from_batches([page])
        missing = [name for name in self.table.column_names if name not in page.column_names]
        if missing:
            raise ValueError(f"{self.table.schema}.{self.table.name}: page lacks columns {missing}")
        page = page.select(self.table.column_names).cast(self.schema)
        if page.num_rows:
            page = self._checked(page)
            self._check_window(page)
            self._note_keys(page)
            self._write(page)
        self.rows_appended += page.num_rows
        return page.num_rows

    def _checked(self, page: pa.Table) -> pa.Table:
        """The page after the warehouse's value rules (core/validation.py), evaluated on its Arrow columns."""
        return check_page(self.table, page, api=self.api, endpoint=self.endpoint)

    def _check_window(self, page: pa.Table) -> None:
        column = self.table.window_column
        if self.window is None or column is None:
            return
        low, high = _window_bounds(self.table, self.window)
        values = page.column(column)
        bounds = pc.min_max(values)
        first, last = bounds["min"].as_py(), bounds["max"].as_py()
        if values.null_count or first < low or last >= high:
            outside = pc.or_(pc.less(values, pa.scalar(low, values.type)), pc.greater_equal(values, pa.scalar(high, values.type)))
            count = pc.sum(pc.fill_null(outside, True)).as_py()
            shown = "NULL" if values.null_count else (first if first < low else last)
            raise RowsOutsideWindowError(
                self.api, self.endpoint, column, f"{count} row(s) outside partition window {self.window} (e.g. {shown})")

    def _note_keys(self, page: pa.Table) -> None:
        """Record whether the page's keys are unique and each key column's range, so that :meth:`seal` can
        tell without a query that pages cannot share a key (disjoint ranges on one key column). A checked
        page is unique on the table's key (check_page collapsed identical copies, refused different ones),
        hence on any staging key that contains it; only another key needs counting."""
        unique = set(self.table.key or self.table.column_names) <= set(self.key) \
            or keys_unique(page, self.key)
        ranges = {}
        for name in self.key:
            bounds = pc.min_max(page.column(name))
            ranges[name] = (bounds["min"].as_py(), bounds["max"].as_py())
        self._pages.append((unique and page.column(self.key[0]).null_count == 0, ranges))

    def _pages_cannot_share_keys(self) -> bool:
        if not all(unique for unique, _ in self._pages):
            return False
        for name in self.key:
            spans = sorted(ranges[name] for _, ranges in self._pages)
            if all(None not in span for span in spans) and all(a[1] < b[0] for a, b in zip(spans, spans[1:])):
                return True
        return len(self._pages) <= 1

    def _write(self, page: pa.Table) -> None:
        if self._writer is None and self._held_bytes + page.nbytes <= self.memory_budget:
            self._held.append(page)
            self._held_bytes += page.nbytes
            return
        if self._writer is None:  # one Parquet file, a row group per page: DuckDB reads it back as one
            self.files = [self.path / "staged.parquet"]
            self._writer = pq.ParquetWriter(self.files[0], self.schema, compression="none")
        for held in [*self._held, page]:
            self._writer.write_table(held)
        self._held, self._held_bytes = [], 0

    def _finish_writing(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def spilled(self) -> bool:
        """True once the pages outgrew the memory budget and went to Parquet files in the staging folder."""
        return bool(self.files)

    def seal(self, conn: duckdb.DuckDBPyConnection | None = None) -> int:
        """Check the staged rows and return how many distinct rows will be swapped in (no more pages after).

        Raises :class:`~stream_assets.core.errors.DuplicateKeyError` for a key staged twice with different values; identical
        copies of a row are kept once. Pages whose keys are unique and whose ranges on a key column do not
        overlap (each 31-day answer, each page of a search sorted by id) need no query; otherwise DuckDB
        checks the staged files, on ``conn`` when given (opening a connection costs ~20 ms), else on a
        private in-memory one.
        """
        if self._sealed_rows is not None:
            return self._sealed_rows
        if self.path is None:
            raise RuntimeError("seal() outside the with block")
        self._finish_writing()
        if self._pages_cannot_share_keys():  # the usual case: unique pages over disjoint ranges (ts, id)
            self._sealed_rows = self.rows_appended
            return self.rows_appended
        if conn is None:
            with duckdb.connect(config={"memory_limit": STAGING_MEMORY_LIMIT,
                                        "temp_directory": str(self.path / "spill")}) as private:
                return self._check(private)
        return self._check(conn.cursor())

    def _check(self, conn: duckdb.DuckDBPyConnection) -> int:
        view = f"staged_{uuid.uuid4().hex[:12]}"
        conn.register(view, self.relation(conn))
        try:
            key = ", ".join(f'"{c}"' for c in self.key)
            # count(*) of a GROUP BY is ~2 x faster than count(DISTINCT (k1, k2)) in DuckDB.
            keys = conn.execute(f"SELECT count(*) FROM (SELECT {key} FROM {view} GROUP BY {key})").fetchall()[0][0]
            if keys < self.rows_appended:  # a key staged more than once: identical copies collapse, others are refused
                conflict = conn.execute(
                    f"SELECT {key}, count(*) FROM (SELECT DISTINCT * FROM {view}) GROUP BY {key} HAVING count(*) > 1 LIMIT 1"
                ).fetchall()
                if conflict:
                    shown = ", ".join(f"{name}={value}" for name, value in zip(self.key, conflict[0]))
                    raise DuplicateKeyError(
                        self.api, self.endpoint, ",".join(self.key),
                        f"{conflict[0][-1]} different rows for the same key ({shown})")
                if self.spilled:
                    distinct = self.path / "distinct.parquet"
                    conn.execute(f"COPY (SELECT DISTINCT * FROM {view}) TO '{distinct}' (FORMAT parquet)")
                    self.files[0].unlink()
                    self.files = [distinct]
                else:
                    self._held = [pa.table(conn.sql(f"SELECT DISTINCT * FROM {view}"))]  # via the Arrow C stream
        finally:
            conn.unregister(view)
        self._sealed_rows = keys
        return keys

    def relation(self, conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
        """The staged rows as a relation of ``conn``: the held Arrow pages (no copy) or the Parquet file."""
        if self.spilled:
            self._finish_writing()
            return conn.sql(f"SELECT * FROM read_parquet('{self.files[0]}')")
        return conn.from_arrow(pa.concat_tables(self._held) if self._held else self.schema.empty_table())

    def columns(self, names: Sequence[str]) -> pa.Table:
        """Only these columns of the staged rows (e.g. the window column, for per-partition counts), read
        back from the held pages or the Parquet file: nothing else of the answer is loaded."""
        if self.spilled:
            self._finish_writing()
            return pq.read_table(self.files[0], columns=list(names))
        return pa.concat_tables([page.select(list(names)) for page in self._held]) if self._held \
            else self.schema.empty_table().select(list(names))

    def head(self, rows: int) -> pa.Table:
        """The first ``rows`` staged rows (a preview), without reading the rest."""
        if self.spilled:
            self._finish_writing()
            batches = pq.ParquetFile(self.files[0]).iter_batches(batch_size=rows)
            first = next(batches, None)
            return pa.Table.from_batches([first]) if first is not None else self.schema.empty_table()
        return (pa.concat_tables(self._held) if self._held else self.schema.empty_table()).slice(0, rows)

    def written(self, rows: int, columns: Sequence[str], preview_rows: int) -> Written:
        """What the swap of these staged rows wrote: ``rows`` inserted, the first ``preview_rows`` rows and
        ``columns`` of every row, read back without loading the rest."""
        # Dates as datetime64, not one Python object per row (~50 MB for a million rows).
        return Written(rows, self.head(preview_rows).to_pandas(), self.columns(columns).to_pandas(date_as_object=False))

    def close(self) -> None:
        """Drop the staging data (idempotent)."""
        self._held, self._held_bytes = [], 0
        self._finish_writing()
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.release()
            Path(self._lock.lock_file).unlink(missing_ok=True)
            self._lock = None


def replace_from_staging(conn: duckdb.DuckDBPyConnection, table: Table, staging: Staging,
                         window: TimeWindow | None) -> int:
    """Make the staged rows the table's rows for ``window`` (the whole table for snapshots) in one
    transaction on the warehouse connection ``conn``; returns the number of rows inserted.

    Seals the staging first (its checks read only the staged rows), then inserts them with
    ``write_replacing`` (delete the window's rows, insert, commit; roll back on error): pages held in
    memory with DuckDB's own settings, spilled ones with :data:`SWAP_SETTINGS` (flat memory).
    """
    staging.seal(conn)
    if not staging.spilled:  # at most the memory budget of Arrow pages: DuckDB's defaults (every core) do
        return write_replacing(conn, table, staging.relation(conn), window)
    names = ["memory_limit", *SWAP_SETTINGS]
    previous = dict(zip(names, conn.execute(
        "SELECT " + ", ".join(f"current_setting('{name}')" for name in names)).fetchall()[0]))
    try:
        for name, value in SWAP_SETTINGS.items():
            conn.execute(f"SET {name} = {value}")
        conn.execute(f"SET memory_limit = '{SWAP_MEMORY_MB}MB'")
        try:
            return write_replacing(conn, table, staging.relation(conn), window)
        except duckdb.OutOfMemoryException:  # rolled back: rows too wide for the small pool; the old rows stand
            _restore(conn, "memory_limit", previous["memory_limit"])
            return write_replacing(conn, table, staging.relation(conn), window)
    finally:
        for name in ("memory_limit", *SWAP_SETTINGS):
            _restore(conn, name, previous[name])


def _restore(conn: duckdb.DuckDBPyConnection, name: str, value: object) -> None:
    """Put a setting back as ``current_setting`` reported it (a memory limit to its rounded text, e.g.
    "18.8 GiB"). Not RESET: in DuckDB 1.5.5 ``RESET memory_limit`` reports the default but leaves the buffer
    pool at the lower limit."""
    conn.execute(f"SET {name} = " + (f"'{value}'" if name == "memory_limit" else str(value).lower()))
