"""Warehouse writes, each test on both backends: the local DuckDB file and a DuckLake (catalog in Postgres,
Parquet files in a folder)."""

import datetime as dt
import os
import time

import duckdb
import pandas as pd
import pytest
from filelock import FileLock

from stream_assets.core.errors import DuplicateKeyError, InvalidValueError, LockTimeoutError, WarehouseError
from stream_assets.core.lake import LakeCommitConflict, LakeError, connect_lake
from stream_assets.core.warehouse import Table, Warehouse, write_replacing
from stream_assets.core.windows import TimeWindow
from stream_assets_tests.conftest import ducklake_catalog, missing_service, run_processes


@pytest.fixture(params=["duckdb", "ducklake"])
def warehouse_settings(request, tmp_path) -> dict:
    """Warehouse settings for a fresh local DuckDB file, then for a fresh DuckLake."""
    if request.param == "duckdb":
        return {"database": str(tmp_path / "warehouse.duckdb")}
    return request.getfixturevalue("lake_settings")


@pytest.fixture
def lake_settings(postgres_database, tmp_path) -> dict:
    """Settings of a fresh DuckLake: a catalog database in Postgres, Parquet files in a temporary folder."""
    settings = {"ducklake_catalog": ducklake_catalog(postgres_database("lake")),
                "ducklake_data_path": str(tmp_path / "lake_files")}
    try:
        connect_lake(settings["ducklake_catalog"], settings["ducklake_data_path"]).close()
    except LakeError as error:
        missing_service(f"DuckLake cannot be opened (extensions duckdb-extension-ducklake/-postgres-scanner?): {error}")
    return settings


@pytest.fixture
def warehouse(warehouse_settings) -> Warehouse:
    return Warehouse(**warehouse_settings)

SERIES = Table("test", "series", (("key", "VARCHAR"), ("ts", "TIMESTAMP"), ("value", "DOUBLE")), "ts")
DAILY = Table("test", "daily", (("key", "VARCHAR"), ("day", "DATE"), ("value", "DOUBLE")), "day")


def _series(day: str, value: float, points: int = 4) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="UTC")
    step = pd.Timedelta(days=1) / points
    return pd.DataFrame({"key": "k", "ts": [start + step * i for i in range(points)], "value": value})


def test_replace_touches_only_its_window(warehouse):
    warehouse.replace(SERIES, _series("2026-03-01", 1.0), TimeWindow.for_days("2026-03-01"))
    warehouse.replace(SERIES, _series("2026-03-02", 2.0), TimeWindow.for_days("2026-03-02"))
    warehouse.replace(SERIES, _series("2026-03-01", 5.0, points=2), TimeWindow.for_days("2026-03-01"))
    rows = warehouse.query("SELECT CAST(ts AS DATE) AS day, count(*) AS n, max(value) AS v FROM test.series GROUP BY 1 ORDER BY 1")
    assert rows.n.tolist() == [2, 4]
    assert rows.v.tolist() == [5.0, 2.0]


def test_rows_outside_the_window_are_refused_before_writing(warehouse):
    warehouse.replace(DAILY, pd.DataFrame({"key": ["k"], "day": [dt.date(2026, 3, 1)], "value": [1.0]}),
                      TimeWindow.for_days("2026-03-01"))
    stray = pd.DataFrame({"key": ["k", "k"], "day": [dt.date(2026, 3, 1), dt.date(2026, 3, 2)], "value": [9.0, 9.0]})
    with pytest.raises(ValueError, match="outside partition window 2026-03-01"):
        warehouse.replace(DAILY, stray, TimeWindow.for_days("2026-03-01"))
    assert warehouse.query("SELECT value FROM test.daily").value.tolist() == [1.0]


def test_failed_insert_rolls_back_the_delete(warehouse):
    window = TimeWindow.for_days("2026-03-01")
    warehouse.replace(SERIES, _series("2026-03-01", 1.0), window)
    broken = _series("2026-03-01", 1.0).astype({"value": object})
    broken.loc[1, "value"] = "not a number"
    with pytest.raises(InvalidValueError, match="field value: 'not a number' is not a number"):
        warehouse.replace(SERIES, broken, window)  # refused before writing
    with warehouse.get_connection() as conn, pytest.raises(duckdb.ConversionException):
        write_replacing(conn, SERIES, broken, window)  # the transaction itself rolls back, too
    assert warehouse.query("SELECT count(*) AS n FROM test.series").n.item() == 4


def test_snapshot_tables_are_replaced_whole(warehouse):
    snapshot = Table("test", "snapshot", (("id", "BIGINT"),))
    warehouse.replace(snapshot, pd.DataFrame({"id": [1, 2, 3]}))
    warehouse.replace(snapshot, pd.DataFrame({"id": [4]}))
    assert warehouse.query("SELECT id FROM test.snapshot").id.tolist() == [4]


def _write_day(settings: dict, day: str, rounds: int) -> None:
    warehouse = Warehouse(**settings)
    for value in range(rounds):
        warehouse.replace(SERIES, _series(day, float(value), points=96), TimeWindow.for_days(day))


def test_concurrent_writers_from_several_processes_all_succeed(warehouse_settings):
    # Fewer writes on the lake: its conflicting commits are retried after pauses, which costs CI time.
    processes, rounds = (6, 5) if "database" in warehouse_settings else (4, 3)
    days = [f"2026-03-0{i}" for i in range(1, processes + 1)]
    assert run_processes(_write_day, [(warehouse_settings, day, rounds) for day in days]) == [0] * len(days)
    counts = Warehouse(**warehouse_settings).query(
        "SELECT CAST(ts AS DATE) AS day, count(*) AS n, min(value) AS lo, max(value) AS hi FROM test.series GROUP BY 1"
    )
    assert sorted(counts.n.tolist()) == [96] * len(days)
    assert set(counts.lo) == {rounds - 1.0} and set(counts.hi) == {rounds - 1.0}


def _file_barrier(folder: str, name: str, me: int, parties: int, timeout: float = 60.0) -> None:
    """Wait until every party has reached ``name`` (a file per party: processes share no memory)."""
    open(os.path.join(folder, f"{name}.{me}"), "w").close()
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(os.path.join(folder, f"{name}.{p}")) for p in range(parties)):
        assert time.monotonic() < deadline, f"barrier {name}: the other writer never came"
        time.sleep(0.002)


def _race_replacing(settings: dict, folder: str, me: int, rounds: int) -> None:
    """Each round: replace a window never written before, then the one every round replaces, at the same
    moment as the other writer (values say who wrote)."""
    warehouse = Warehouse(**settings)
    for round_ in range(rounds):
        for window, day in (("new", f"2026-04-{round_ + 1:02d}"), ("existing", "2026-03-31")):
            _file_barrier(folder, f"{round_}-{window}", me, 2)
            warehouse.replace(SERIES, _series(day, float(me), points=24), TimeWindow.for_days(day))


def test_two_hosts_replacing_one_window_at_once_leave_one_copy(warehouse_settings, tmp_path):
    # DuckLake's optimistic commits let two deletes of a window that holds no rows both commit, with both
    # inserts: the table's write lock (core/lake.py) is what keeps one copy there.
    rounds = 20
    Warehouse(**warehouse_settings).replace(SERIES, _series("2026-03-31", 9.0, points=24), TimeWindow.for_days("2026-03-31"))
    folder = tmp_path / "barriers"
    folder.mkdir()
    assert run_processes(_race_replacing, [(warehouse_settings, str(folder), me, rounds) for me in (0, 1)]) == [0, 0]
    days = Warehouse(**warehouse_settings).query(
        "SELECT CAST(ts AS DATE) AS day, count(*) AS n, count(DISTINCT ts) AS times, count(DISTINCT value) AS writers "
        "FROM test.series GROUP BY 1 ORDER BY 1")
    assert len(days) == rounds + 1
    assert days.n.tolist() == [24] * (rounds + 1)  # one copy of each window, every time
    assert days.times.tolist() == [24] * (rounds + 1) and days.writers.tolist() == [1] * (rounds + 1)


HISTORY = Table("test", "history", (("id", "VARCHAR"), ("title", "VARCHAR"), ("first_seen", "TIMESTAMP"),
                                    ("last_seen", "TIMESTAMP")))


def test_history_keeps_one_row_per_version(warehouse):
    t1, t2, t3 = (dt.datetime(2026, 3, 1, h, tzinfo=dt.timezone.utc) for h in (1, 2, 3))
    warehouse.record_history(HISTORY, pd.DataFrame({"id": ["a", "b"], "title": ["A", "B"]}), ["id"], t1)
    counts = warehouse.record_history(HISTORY, pd.DataFrame({"id": ["a", "b"], "title": ["A", "B2"]}), ["id"], t2)
    assert counts == {"versions_extended": 1, "versions_inserted": 1}
    warehouse.record_history(HISTORY, pd.DataFrame({"id": ["a", "b"], "title": ["A", "B"]}), ["id"], t3)
    rows = warehouse.query("SELECT id, title, hour(first_seen) AS f, hour(last_seen) AS l FROM test.history ORDER BY id, f")
    assert rows.values.tolist() == [["a", "A", 1, 3], ["b", "B", 1, 1], ["b", "B2", 2, 2], ["b", "B", 3, 3]]
    warehouse.record_history(HISTORY, pd.DataFrame({"id": ["a", "b"], "title": ["A", "B"]}), ["id"], t3)  # same poll again
    assert len(warehouse.query("SELECT * FROM test.history")) == 4


# --- keys, values, paths and locks -----------------------------------------------------------------
KEYED = Table("test", "keyed", (("id", "VARCHAR"), ("ts", "TIMESTAMP"), ("views", "BIGINT"), ("ratio", "DOUBLE")),
              "ts", key=("id",), non_negative=("views",))
DAY_1 = TimeWindow.for_days("2026-03-01")


def _keyed(**columns) -> pd.DataFrame:
    base = {"id": ["a", "b"], "ts": [pd.Timestamp("2026-03-01 01:00", tz="UTC")] * 2, "views": [1, 2], "ratio": [0.5, 0.25]}
    return pd.DataFrame({**base, **columns})


def test_identical_duplicates_collapse_and_conflicting_ones_are_refused(warehouse):
    assert warehouse.replace(KEYED, pd.concat([_keyed(), _keyed()]), DAY_1) == 2
    with pytest.raises(DuplicateKeyError, match="share a key with different values.*id='a'.*differing: views") as caught:
        warehouse.replace(KEYED, pd.concat([_keyed(), _keyed(views=[5, 2])]), DAY_1)
    assert (caught.value.api, caught.value.endpoint, caught.value.field) == ("test", "keyed", "id")
    assert warehouse.query("SELECT id, views FROM test.keyed ORDER BY id").values.tolist() == [["a", 1], ["b", 2]]


@pytest.mark.parametrize(("columns", "field", "message"), [
    ({"ratio": [float("nan"), 0.1]}, None, None),  # NaN in a non-key DOUBLE is a missing value (JSON cannot carry NaN)
    ({"ratio": [float("inf"), 0.1]}, "ratio", "not a finite number"),
    ({"views": [-1, 2]}, "views", "is negative"),
    ({"views": [2**64, 2]}, "views", "overflows its BIGINT column"),
    ({"ts": [pd.Timestamp("2262-01-01", tz="UTC")] * 2}, "ts", "outside 1970-01-01..2200-01-01"),
    ({"id": ["k" * 1001, "b"]}, "id", "1,001 characters exceeds the 1,000-character limit"),
])
def test_values_the_warehouse_may_not_hold_are_refused_naming_the_field(warehouse, columns, field, message):
    if field is None:
        assert warehouse.replace(KEYED, _keyed(**columns), DAY_1) == 2
        return
    with pytest.raises(InvalidValueError, match=message) as caught:
        warehouse.replace(KEYED, _keyed(**columns), DAY_1)
    assert caught.value.field == field


def test_history_never_stores_two_identical_versions_from_one_answer(warehouse):
    seen = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    counts = warehouse.record_history(HISTORY, pd.DataFrame({"id": ["a", "a"], "title": ["A", "A"]}), ["id"], seen)
    assert counts == {"versions_extended": 0, "versions_inserted": 1}
    with pytest.raises(DuplicateKeyError):
        warehouse.record_history(HISTORY, pd.DataFrame({"id": ["a", "a"], "title": ["A", "B"]}), ["id"], seen)


def test_the_lock_file_lives_beside_the_database(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "sub" / "w.duckdb"))
    assert warehouse.lock_path == tmp_path / "sub" / "w.duckdb.lock"
    warehouse.replace(SNAPSHOT_T, pd.DataFrame({"id": [1]}))
    assert sorted(p.name for p in (tmp_path / "sub").iterdir() if p.suffix == ".lock") == ["w.duckdb.lock"]


SNAPSHOT_T = Table("test", "snap", (("id", "BIGINT"),))


def test_a_directory_or_an_unwritable_path_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAM_ASSETS_DUCKDB_PATH", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(WarehouseError, match="is a directory; STREAM_ASSETS_DUCKDB_PATH"):
        Warehouse().replace(SNAPSHOT_T, pd.DataFrame({"id": [1]}))
    assert not (tmp_path.parent / f"{tmp_path.name}.lock").exists()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(WarehouseError, match="no permission"):
            Warehouse(database=str(locked / "w.duckdb")).replace(SNAPSHOT_T, pd.DataFrame({"id": [1]}))
    finally:
        locked.chmod(0o700)
    assert time.monotonic() - started < 5


def test_waiting_for_the_warehouse_lock_ends_with_a_typed_error(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"), lock_timeout_seconds=0.3)
    with FileLock(str(warehouse.lock_path)):
        with pytest.raises(LockTimeoutError, match="the warehouse write lock .*w.duckdb.lock after 0 s"):
            warehouse.replace(SNAPSHOT_T, pd.DataFrame({"id": [1]}))


def test_lake_writers_that_keep_conflicting_end_in_a_typed_error(lake_settings):
    lake = Warehouse(**lake_settings, lake_commit_attempts=2)
    lake.replace(SERIES, _series("2026-03-01", 1.0), TimeWindow.for_days("2026-03-01"))
    with lake.get_connection() as rival:  # a writer that commits while ours is in flight, every time
        original = duckdb.DuckDBPyConnection.execute
        def execute_with_a_rival_commit(conn, sql, *args):
            if sql == "COMMIT" and conn is not rival:
                rival.execute("BEGIN TRANSACTION")
                rival.execute("DELETE FROM test.series WHERE key = 'rival'")
                rival.execute("INSERT INTO test.series VALUES ('rival', '2026-03-05', 0)")
                rival.execute("COMMIT")
            return original(conn, sql, *args)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(duckdb.DuckDBPyConnection, "execute", execute_with_a_rival_commit)
            with pytest.raises(LakeCommitConflict, match=r"test.series: DuckLake commit still conflicting .* after 2 attempts"):
                lake.replace(SERIES, _series("2026-03-01", 7.0), TimeWindow.for_days("2026-03-01"))
    kept = lake.query("SELECT count(*) AS n, max(value) AS v FROM test.series WHERE key = 'k'")
    assert kept.values.tolist() == [[4, 1.0]]  # the old partition, untouched


def test_a_lake_that_cannot_be_opened_is_a_typed_error_without_the_password(postgres_admin_url, tmp_path):
    missing_db = ducklake_catalog(postgres_admin_url.rsplit("/", 1)[0] + "/sa_no_such_lake") + " password=not-a-real-secret"
    with pytest.raises(LakeError, match="cannot open the DuckLake .*sa_no_such_lake") as caught:
        connect_lake(missing_db, str(tmp_path / "lake_files"), attempts=1)
    assert "not-a-real-secret" not in str(caught.value)


def _count_in_another_process(path: str, queue) -> None:
    """Open the file with a plain DuckDB connection (fails while another process holds it)."""
    queue.put(duckdb.connect(path).execute("SELECT count(*) FROM test.series").fetchall()[0][0])


def test_each_block_releases_the_file_checkpointed_while_the_process_keeps_duckdb(tmp_path):
    import multiprocessing

    from stream_assets.core import instances

    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(database=str(path))
    for day in ("2026-03-01", "2026-03-02"):
        warehouse.replace(SERIES, _series(day, 1.0), TimeWindow.for_days(day))
    # One DuckDB instance served both writes in this process; the file was checkpointed and let go after each.
    assert len([key for key in instances._INSTANCES if ("temp_directory", f"{path}.tmp") in key[2]]) == 1
    assert not (tmp_path / "warehouse.duckdb.wal").exists()
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=_count_in_another_process, args=(str(path), queue))
    process.start()
    process.join(60)
    assert process.exitcode == 0 and queue.get(timeout=5) == 8


def test_a_transaction_left_open_is_rolled_back_and_the_next_block_works(tmp_path):
    from stream_assets.core.instances import process_instance

    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(database=str(path))
    warehouse.replace(SERIES, _series("2026-03-01", 1.0), TimeWindow.for_days("2026-03-01"))
    with warehouse.get_connection() as conn:
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DELETE FROM test.series")  # never committed
    assert warehouse.query("SELECT count(*) AS n FROM test.series").n[0] == 4
    # An instance that still has the file attached (a detach that failed) is replaced, not reused.
    _, instance = process_instance({"temp_directory": f"{path}.tmp"})
    instance.execute(f"ATTACH '{path}' AS warehouse")
    assert warehouse.query("SELECT count(*) AS n FROM test.series").n[0] == 4
    instance.close()


def test_threads_of_one_process_share_its_duckdb_and_queue_on_the_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    days = [f"2026-03-0{i}" for i in range(1, 7)]

    def write(day: str) -> int:
        return sum(warehouse.replace(SERIES, _series(day, float(n)), TimeWindow.for_days(day)) for n in range(3))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(write, days)) == [12] * len(days)
    counts = warehouse.query("SELECT CAST(ts AS DATE)::VARCHAR AS day, count(*) AS n, max(value) AS v FROM test.series "
                             "GROUP BY 1 ORDER BY 1")
    assert counts.day.tolist() == days and set(counts.n) == {4} and set(counts.v) == {2.0}
