"""A kill -9 while an asset streams pages into staging leaves the warehouse's old rows, and the next run
removes the dead run's staging folder: the real assets, clients and emulators, killed after their first
page is staged (spilled to Parquet) and before the swap."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from stream_assets.core.staging import Staging, staging_dir
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamroot import assets as streamroot_assets
from stream_assets.streamroot.resources import StreamrootResource
from stream_assets.streamtime import assets as streamtime_assets
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets_tests.conftest import STREAMROOT_CUSTOMER, STREAMROOT_KEY, STREAMTIME_KEY

# api -> (asset, partition, the rows to compare, the resource key)
CASES = {
    "Streamroot": (next(a for a in streamroot_assets.assets if a.key.path[-1] == "traffic_timeseries"), "2026-03-01",
                   "SELECT * FROM streamroot.traffic_timeseries ORDER BY ALL", "streamroot"),
    "Streamtime": (next(a for a in streamtime_assets.assets if a.key.path[-1] == "logged_times"), "2026-03-02",
                   "SELECT * EXCLUDE (record), record::VARCHAR AS record FROM streamtime.logged_times ORDER BY id",
                   "streamtime"),
}


def _resources(api: str, base_url: str, database: str) -> dict:
    resource = (StreamrootResource(api_key=STREAMROOT_KEY, customer_id=STREAMROOT_CUSTOMER, base_url=base_url)
                if api == "Streamroot" else StreamtimeResource(api_key=STREAMTIME_KEY, base_url=base_url))
    return {CASES[api][3]: resource, "warehouse": Warehouse(database=database)}


def _materialize(api: str, base_url: str, database: str) -> None:
    asset, partition, _, _ = CASES[api]
    dg.materialize([asset], resources=_resources(api, base_url, database), partition_key=partition)


def _stream_then_hang(api: str, base_url: str, database: str, data_dir: str, ready: str) -> None:
    """The asset's run, which hangs (to be killed) once its first page is staged and spilled to disk."""
    os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    append = Staging.append

    def append_then_hang(self: Staging, page) -> int:
        self.memory_budget = 0  # spill: the dead run leaves a Parquet file behind
        staged = append(self, page)
        Path(ready).write_text(str(self.path))
        time.sleep(120)
        return staged

    Staging.append = append_then_hang
    _materialize(api, base_url, database)


@pytest.mark.parametrize("api", list(CASES))
def test_a_kill_during_streaming_leaves_the_old_rows_and_the_next_run_removes_the_staging(
        api, streamroot, streamtime, warehouse, private_data_dir):
    base_url = (streamroot if api == "Streamroot" else streamtime).base_url
    rows_sql = CASES[api][2]
    _materialize(api, base_url, str(warehouse.path))
    before = warehouse.query(rows_sql)
    assert len(before) > 0
    ready = private_data_dir.parent / f"ready-{api}"
    worker = multiprocessing.get_context("spawn").Process(
        target=_stream_then_hang, args=(api, base_url, str(warehouse.path), str(private_data_dir), str(ready)))
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), f"the run never staged a page (exit code {worker.exitcode})"
        stale = Path(ready.read_text())
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    assert any(stale.iterdir()), "the killed run's staged page is on disk"
    assert warehouse.query(rows_sql).equals(before), "the killed run must leave the old rows"
    _materialize(api, base_url, str(warehouse.path))
    assert not stale.exists()
    assert list(staging_dir().iterdir()) == []
    assert warehouse.query(rows_sql).equals(before)
