"""Several hosts, for real: two Celery worker processes stand for two hosts, each with its own
STREAM_ASSETS_DATA_DIR, HOME, TMPDIR and DAGSTER_HOME, sharing only Postgres (Dagster's instance through
deploy/dagster.yaml, the rid state, the DuckLake catalog), Redis (Celery's broker) and a folder for the lake's
Parquet files. Two runs of the job `on_celery_workers` (two days), launched at once from a third "host", send
their steps to both workers. Streamtime's budgets are scaled down so that the two hosts together ask for more
than one window allows: only one budget shared through Postgres keeps the emulator from answering 429."""

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from stream_assets.core.lake import LakeError, connect_lake
from stream_assets.core.ratelimit import parse_budgets, server_overruns
from stream_assets.core.state import PostgresState, RequestIds
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamtime.assets import daily_assets as streamtime_daily_assets
from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets.streamtime.entities import ENTITIES
from stream_assets_tests.conftest import STREAMAPI_KEY, STREAMTIME_KEY, VENV_BIN, ducklake_catalog, missing_service
from stream_assets_tests.streamtime.expect import expected_rows, key_rows

REPO = Path(__file__).resolve().parents[2]
DAYS = ["2026-03-01", "2026-03-02"]
TIMESERIES = ["audience_timeseries", "traffic_timeseries", "bandwidth_timeseries", "buffering_timeseries"]
REDIS_DB = 13  # a database of its own on the shared Redis
# Streamtime's budgets scaled down to the test's seconds (the documented 60/60 at 30 times the speed, 2/2, would
# leave too few requests per window to share): the two runs send about 40 requests, many windows' worth, from
# both hosts at once, so a host on a budget of its own would get 429s.
RATES, PROCESSING, PROCESSING_SECONDS = "5/2,60/60", "1/2,10/120", 0.02


@pytest.fixture
def streamtime():
    """The Streamtime emulator (used by cli_env) enforcing the scaled budgets the hosts are configured with."""
    with StreamtimeEmulator({STREAMTIME_KEY: "Two hosts"}, seed=8, request_limits=RATES, processing_limits=PROCESSING,
                            processing_seconds=PROCESSING_SECONDS) as emulator:
        yield emulator


def _host(root: Path, name: str, shared_env: dict[str, str]) -> dict[str, str]:
    """The environment of one "host": private data dir, HOME, TMPDIR and DAGSTER_HOME (holding deploy/dagster.yaml)."""
    folders = {key: root / name / sub for key, sub in
               [("STREAM_ASSETS_DATA_DIR", "data"), ("HOME", "home"), ("TMPDIR", "tmp"), ("DAGSTER_HOME", "dagster_home")]}
    for folder in folders.values():
        folder.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", folders["DAGSTER_HOME"] / "dagster.yaml")
    return {**shared_env, **{key: str(folder) for key, folder in folders.items()}}


def _wait_ready(logs: list[Path], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(log.exists() and " ready." in log.read_text() for log in logs):
            return
        time.sleep(0.5)
    raise AssertionError("Celery workers not ready: " + " | ".join(log.read_text()[-800:] for log in logs if log.exists()))


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def test_runs_on_two_worker_hosts_share_rids_budget_lake_and_instance(postgres_database, redis_url, cli_env, streamapi,
                                                                      streamtime, tmp_path, monkeypatch):
    if not (VENV_BIN / "dagster-celery").exists():
        missing_service("dagster-celery is not installed in this environment")
    lake = (ducklake_catalog(postgres_database("lake")), str(tmp_path / "shared" / "lake_files"))
    try:
        connect_lake(*lake).close()
    except LakeError as error:
        missing_service(f"DuckLake cannot be opened: {error}")
    import redis

    broker = f"{redis_url}/{REDIS_DB}"
    redis.Redis.from_url(broker).delete("dagster")  # tasks a crashed earlier run may have left queued
    state_url = postgres_database("state")
    shared = {**cli_env, "STREAM_ASSETS_STATE_URL": state_url, "DAGSTER_POSTGRES_URL": postgres_database("dagster"),
              "STREAM_ASSETS_DUCKLAKE_CATALOG": lake[0], "STREAM_ASSETS_DUCKLAKE_DATA_PATH": lake[1],
              "STREAM_ASSETS_CELERY_BROKER": broker, "PYTHONUNBUFFERED": "1",
              "STREAMTIME_RATE_LIMITS": RATES, "STREAMTIME_PROCESSING_LIMITS": PROCESSING}
    celery_yaml = tmp_path / "celery.yaml"
    celery_yaml.write_text((REPO / "deploy" / "celery.yaml").read_text().replace("redis://127.0.0.1:6379/0", broker))

    hosts = {name: _host(tmp_path, name, shared) for name in ("host-a", "host-b", "launcher")}
    workers, logs = [], []
    with ExitStack() as stack:
        stack.callback(_stop, workers)  # whatever happens (log files close first: the workers keep their own)
        for name in ("host-a", "host-b"):
            logs.append(tmp_path / f"{name}.log")
            workers.append(subprocess.Popen(
                [str(VENV_BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(celery_yaml),
                 "-n", name, "--", "--concurrency=1"],
                env=hosts[name], cwd=hosts[name]["HOME"], stdout=stack.enter_context(logs[-1].open("w")),
                stderr=subprocess.STDOUT, start_new_session=True))
        # As deploy/README.md says: set each pool once, before runs race to create it in a fresh instance.
        subprocess.run([str(VENV_BIN / "dagster"), "instance", "concurrency", "set", "streamtime", "2"],
                       env=hosts["launcher"], check=True, capture_output=True, timeout=120)
        _wait_ready(logs)
        runs = [subprocess.Popen(
            [str(VENV_BIN / "dagster"), "job", "execute", "-m", "stream_assets", "-j", "on_celery_workers",
             "--tags", f'{{"dagster/partition": "{day}"}}'],
            env=hosts["launcher"], cwd=hosts["launcher"]["HOME"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True) for day in DAYS]
        outputs = [run.communicate(timeout=400)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], "\n".join(output[-3000:] for output in outputs)

    # All runs recorded in the Postgres instance, their steps spread over both worker hosts.
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", shared["DAGSTER_POSTGRES_URL"])
    with DagsterInstance.from_config(hosts["launcher"]["DAGSTER_HOME"]) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        recorded = instance.get_runs()
        assert sorted(run.tags["dagster/partition"] for run in recorded) == DAYS
        assert {run.status for run in recorded} == {DagsterRunStatus.SUCCESS}
        on_worker = {(run.run_id, event.step_key): event.dagster_event.engine_event_data.metadata["Celery worker"].value
                     for run in recorded for event in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                     if "Celery worker" in event.dagster_event.engine_event_data.metadata}
        succeeded = [(run.run_id, event.step_key) for run in recorded
                     for event in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)]
    # Every step of both runs went through a worker, and both workers took some, Streamtime's steps included.
    assert len(succeeded) >= 2 * 12 and set(succeeded) == set(on_worker)
    assert {name.split("@")[0] for name in on_worker.values()} == {"host-a", "host-b"}
    streamtime_steps = {f"streamtime__{a.key.path[-1]}" for a in streamtime_daily_assets}
    assert sorted(step for _, step in succeeded if step.startswith("streamtime__")) == sorted([*streamtime_steps] * 2)

    # One Streamtime budget across both hosts: no 429 and no delay at the emulator, and no window of the scaled
    # budgets overrun, computed from the emulator's own arrival stamps (the run asked for several windows' worth).
    assert streamtime.counters["throttled"] == 0 and streamtime.counters["delayed"] == 0
    arrivals = [(request.received_at, PROCESSING_SECONDS) for request in streamtime.requests]
    assert len(arrivals) > 3 * parse_budgets(RATES, "requests")[0].amount
    assert server_overruns(arrivals, parse_budgets(RATES, "requests") + parse_budgets(PROCESSING, "processing")) == 0

    # StreamAPI saw strictly increasing rids in arrival order, from both hosts, none refused (no 203 retry).
    rids = [int(request.query["rid"][0]) for request in streamapi.requests]
    assert len(rids) >= 4 and all(b > a for a, b in zip(rids, rids[1:]))
    assert RequestIds(STREAMAPI_KEY, PostgresState(state_url)).last() == rids[-1]

    # Whole partitions in the lake, without duplicates; nothing shared was left in a host's own folders.
    warehouse = Warehouse(ducklake_catalog=lake[0], ducklake_data_path=lake[1])
    for table in TIMESERIES:
        counts = warehouse.query(
            f"SELECT CAST(ts AS DATE)::VARCHAR AS day, count(*) AS n, count(DISTINCT (sr_key, ts)) AS distinct_n, "
            f"count(DISTINCT sr_key) AS keys FROM streamroot.{table} GROUP BY 1 ORDER BY 1")
        assert counts.day.tolist() == DAYS, table
        assert counts.n.tolist() == counts.distinct_n.tolist() == (288 * counts["keys"]).tolist(), table
    recordings = warehouse.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM streamapi.video_recordings")
    assert recordings.n.item() == recordings.d.item() > 0
    assert warehouse.query("SELECT count(*) AS n FROM streamapi.themes").n.item() > 0
    first, last = (dt.date.fromisoformat(day) for day in (DAYS[0], DAYS[-1]))
    for entity in (e for e in ENTITIES if e.partitioned):  # exactly the emulator's records, each id once
        rows = warehouse.query(f"SELECT * FROM streamtime.{entity.name}")
        assert rows.id.is_unique and key_rows(rows, entity) == expected_rows(streamtime, entity, first, last), entity.name
    assert len(warehouse.query("SELECT * FROM streamtime.logged_times")) > 0
    statistics = warehouse.query("SELECT day::VARCHAR AS day, logged_minutes, invoices FROM streamtime.daily_statistics "
                                 "ORDER BY day")
    assert statistics.day.tolist() == DAYS
    assert statistics.logged_minutes.tolist() == [sum(r["minutes"] for r in streamtime.records("time", d, d))
                                                  for d in (first, last)]
    for name in ("host-a", "host-b", "launcher"):
        data_dir = Path(hosts[name]["STREAM_ASSETS_DATA_DIR"])
        assert [p.name for p in data_dir.rglob("*") if p.suffix in (".sqlite", ".duckdb", ".lock")] == []
