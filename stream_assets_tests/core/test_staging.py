import datetime as dt
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest

from stream_assets.core.errors import ApiPayloadError, DuplicateKeyError, RowsOutsideWindowError
from stream_assets.core.staging import Staging, replace_from_staging, rows_to_arrow, staging_dir
from stream_assets.core.warehouse import Table, Warehouse
from stream_assets.core.windows import TimeWindow

SERIES = Table("test", "series", (("key", "VARCHAR"), ("ts", "TIMESTAMP"), ("value", "DOUBLE")), "ts")
KEY = ("key", "ts")
DAY = TimeWindow.for_days("2026-03-01")


def _page(day: str, value: float, first: int = 0, count: int = 4, key: str = "k") -> pa.Table:
    start = dt.datetime.fromisoformat(day)
    return pa.table({"key": [key] * count, "ts": [start + dt.timedelta(hours=6 * i) for i in range(first, first + count)],
                     "value": [value] * count}, schema=pa.schema([("key", pa.string()), ("ts", pa.timestamp("us")),
                                                                    ("value", pa.float64())]))


def _stage(warehouse: Warehouse, pages: list[pa.Table], window: TimeWindow = DAY, budget: int = 1 << 20) -> int:
    with Staging(SERIES, key=KEY, api="TestApi", endpoint="series", window=window, memory_budget=budget) as staging:
        for page in pages:
            staging.append(page)
        assert staging.spilled == (budget == 0)
        assert staging.spilled == any(staging.path.iterdir())
        with warehouse.get_connection() as conn:
            return replace_from_staging(conn, SERIES, staging, window)


# Pages held in memory, and pages spilled to Parquet files (a zero budget): the same outcomes.
BUDGETS = pytest.mark.parametrize("budget", [1 << 20, 0], ids=["in_memory", "spilled"])


def _rows(warehouse: Warehouse) -> list[tuple]:
    return [tuple(r) for r in warehouse.query(
        "SELECT CAST(ts AS DATE)::VARCHAR AS day, count(*) AS n, max(value) AS v FROM test.series GROUP BY 1 ORDER BY 1"
    ).itertuples(index=False)]


def _staged_files() -> list[Path]:
    return sorted(staging_dir().iterdir()) if staging_dir().exists() else []


@BUDGETS
def test_pages_replace_only_the_partitions_window_and_the_staging_file_goes(warehouse, budget):
    _stage(warehouse, [_page("2026-03-01", 1.0)], budget=budget)
    _stage(warehouse, [_page("2026-03-02", 2.0)], TimeWindow.for_days("2026-03-02"), budget=budget)
    inserted = _stage(warehouse, [_page("2026-03-01", 5.0, 0, 2), _page("2026-03-01", 5.0, 2, 1)], budget=budget)
    assert inserted == 3
    assert _rows(warehouse) == [("2026-03-01", 3, 5.0), ("2026-03-02", 4, 2.0)]
    assert _staged_files() == []


@BUDGETS
def test_staging_the_same_answer_twice_leaves_the_same_rows(warehouse, budget):
    pages = [_page("2026-03-01", 1.0, 0, 2), _page("2026-03-01", 1.0, 2, 2)]
    _stage(warehouse, pages, budget=budget)
    first = warehouse.query("SELECT * FROM test.series ORDER BY ts")
    _stage(warehouse, pages, budget=budget)
    assert warehouse.query("SELECT * FROM test.series ORDER BY ts").equals(first)
    assert len(first) == 4


@BUDGETS
def test_identical_copies_of_a_row_are_stored_once(warehouse, budget):
    assert _stage(warehouse, [_page("2026-03-01", 1.0, 0, 3), _page("2026-03-01", 1.0, 1, 3)], budget=budget) == 4
    assert _rows(warehouse) == [("2026-03-01", 4, 1.0)]
    twice_in_one_page = pa.concat_tables([_page("2026-03-01", 2.0, 0, 2), _page("2026-03-01", 2.0, 1, 1)])
    assert _stage(warehouse, [twice_in_one_page], budget=budget) == 2
    assert _rows(warehouse) == [("2026-03-01", 2, 2.0)]


@BUDGETS
def test_a_key_staged_with_different_values_is_refused_and_leaves_the_old_rows(warehouse, budget):
    _stage(warehouse, [_page("2026-03-01", 1.0)])
    with pytest.raises(DuplicateKeyError, match=r"TestApi series: conflicting duplicates: field key,ts: 2 different rows for the same key .*ts=2026-03-01") as caught:
        _stage(warehouse, [_page("2026-03-01", 7.0), _page("2026-03-01", 8.0, 3, 1)], budget=budget)
    assert isinstance(caught.value, ApiPayloadError)
    assert (caught.value.api, caught.value.endpoint) == ("TestApi", "series")
    assert _rows(warehouse) == [("2026-03-01", 4, 1.0)]
    assert _staged_files() == []


def test_rows_outside_the_window_are_refused_before_the_warehouse_is_touched(warehouse):
    _stage(warehouse, [_page("2026-03-01", 1.0)])
    with pytest.raises(RowsOutsideWindowError, match="1 row.* outside partition window 2026-03-01.*2026-03-02 00:00"):
        _stage(warehouse, [_page("2026-03-01", 9.0, 0, 5)])
    with pytest.raises(RowsOutsideWindowError, match="1 row.* outside partition window 2026-03-01.*NULL"):
        _stage(warehouse, [pa.table({"key": ["k"], "ts": pa.array([None], pa.timestamp("us")), "value": [1.0]})])
    assert _rows(warehouse) == [("2026-03-01", 4, 1.0)]
    assert _staged_files() == []


def test_a_failure_before_the_swap_leaves_the_old_rows_and_drops_the_staged_ones(warehouse):
    _stage(warehouse, [_page("2026-03-01", 1.0)])
    with pytest.raises(ApiPayloadError, match="page 2 was malformed"):
        with Staging(SERIES, key=KEY, api="TestApi", endpoint="series", window=DAY) as staging:
            staging.append(_page("2026-03-01", 3.0))
            staging.append(_page("2026-03-01", 3.0, 0, 2))
            assert staging.path.exists()
            raise ApiPayloadError("TestApi", "series", "page 2 was malformed")
    assert _rows(warehouse) == [("2026-03-01", 4, 1.0)]
    assert _staged_files() == []


def test_a_snapshot_is_replaced_whole():
    snapshot = Table("test", "snapshot", (("id", "BIGINT"), ("seen", "TIMESTAMP")))
    warehouse = Warehouse()
    for ids in ([1, 2, 3], [4]):
        with Staging(snapshot, key=("id",), api="TestApi", endpoint="things") as staging:
            aware = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
            staging.append(rows_to_arrow(snapshot, [{"id": i, "seen": aware} for i in ids]))
            with warehouse.get_connection() as conn:
                replace_from_staging(conn, snapshot, staging, None)
    assert warehouse.query("SELECT id, seen::VARCHAR AS seen FROM test.snapshot").values.tolist() == [[4, "2026-03-01 10:00:00"]]


def _stream_forever(database: str, data_dir: str, ready: str) -> None:
    os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    with Staging(SERIES, key=KEY, api="TestApi", endpoint="series", window=DAY, memory_budget=0) as staging:
        for number in range(10_000):
            staging.append(_page("2026-03-01", 2.0, number % 4, 1))
            if number == 20:
                Path(ready).write_text(str(staging.path))
            time.sleep(0.01)


def test_a_kill_during_streaming_leaves_the_old_rows_and_the_next_run_removes_the_stale_file(warehouse, private_data_dir):
    _stage(warehouse, [_page("2026-03-01", 1.0)])
    ready = private_data_dir.parent / "ready"
    worker = multiprocessing.get_context("spawn").Process(
        target=_stream_forever, args=(str(warehouse.path), str(private_data_dir), str(ready)))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stale = Path(ready.read_text())
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    assert stale.exists()
    assert _rows(warehouse) == [("2026-03-01", 4, 1.0)]
    _stage(warehouse, [_page("2026-03-01", 3.0)])
    assert not stale.exists()
    assert _staged_files() == []
    assert _rows(warehouse) == [("2026-03-01", 4, 3.0)]


def test_a_live_staging_folder_is_not_swept_by_another_run(warehouse):
    with Staging(SERIES, key=KEY, api="TestApi", endpoint="series", window=DAY, memory_budget=0) as live:
        live.append(_page("2026-03-01", 1.0))
        _stage(warehouse, [_page("2026-03-01", 2.0)], budget=0)
        assert live.path.exists()
        with warehouse.get_connection() as conn:
            assert replace_from_staging(conn, SERIES, live, DAY) == 4
    assert _rows(warehouse) == [("2026-03-01", 4, 1.0)]


WIDE = Table("test", "wide", (("id", "BIGINT"), ("ts", "TIMESTAMP"), ("record", "JSON")), "ts", key=("id",))


def _wide_page(first: int, count: int, width: int) -> pa.Table:
    start = dt.datetime(2026, 3, 1)
    return pa.table({"id": list(range(first, first + count)),
                     "ts": [start + dt.timedelta(seconds=i) for i in range(first, first + count)],
                     "record": [f'{{"id": {i}, "notes": "{"x" * width}"}}' for i in range(first, first + count)]})


def _swap_settings(conn) -> tuple:
    """The settings a swap changes; the memory limit in whole GiB (DuckDB reports it rounded, "18.8 GiB")."""
    limit, *others = conn.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('preserve_insertion_order'), "
        "current_setting('write_buffer_row_group_count'), current_setting('enable_external_file_cache')").fetchall()[0]
    return (round(float(limit.split()[0])) if limit.endswith("GiB") else limit, *others)


def test_rows_too_wide_for_the_swaps_small_memory_pool_are_swapped_with_the_connections_own(warehouse, monkeypatch):
    import stream_assets.core.staging as staging_module

    monkeypatch.setattr(staging_module, "SWAP_MEMORY_MB", 1)  # far below one row group of these rows
    tries = []

    def counted(conn, *args):
        tries.append(conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        return staging_module.write_replacing.__wrapped__(conn, *args)

    counted.__wrapped__ = staging_module.write_replacing
    monkeypatch.setattr(staging_module, "write_replacing", counted)
    with Staging(WIDE, window=DAY, memory_budget=0) as staging:
        for first in range(0, 20_000, 5_000):
            staging.append(_wide_page(first, 5_000, 600))
        with warehouse.get_connection() as conn:
            before = _swap_settings(conn)
            assert replace_from_staging(conn, WIDE, staging, DAY) == 20_000
            assert _swap_settings(conn) == before  # the swap's settings do not outlive it
    # Out of memory in the small pool, rolled back, swapped again with the connection's own limit.
    assert len(tries) == 2 and tries[0] == "976.5 KiB" and tries[1].endswith("GiB")
    stored = warehouse.query("SELECT count(*) AS n, count(DISTINCT id) AS ids, min(length(record::VARCHAR)) AS width "
                             "FROM test.wide").iloc[0]
    assert (stored.n, stored.ids) == (20_000, 20_000) and stored.width > 600


def test_the_warehouse_writes_small_row_groups_that_a_plain_duckdb_connection_reads(warehouse):
    import duckdb

    from stream_assets.core.warehouse import ROW_GROUP_ROWS

    rows = 3 * ROW_GROUP_ROWS + 5
    with Staging(WIDE, window=DAY) as staging:
        staging.append(_wide_page(0, rows, 10))
        warehouse.replace_staged(WIDE, staging, DAY)
    with warehouse.get_connection() as conn:
        conn.execute("CHECKPOINT")
    with duckdb.connect(str(warehouse.path), read_only=True) as plain:
        assert plain.execute("SELECT count(*), max(id) FROM test.wide").fetchall() == [(rows, rows - 1)]
        groups = plain.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('test.wide')").fetchall()[0][0]
    assert groups == 4  # 16,384-row groups, not DuckDB's default of 122,880
