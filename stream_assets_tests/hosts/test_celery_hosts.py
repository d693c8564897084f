"""Several hosts, for real: two Celery worker processes stand for two hosts, each with its own
STREAM_ASSETS_DATA_DIR, HOME, TMPDIR and DAGSTER_HOME, sharing only Postgres (Dagster's instance through
deploy/dagster.yaml, the rid state, the DuckLake catalog), Redis (Celery's broker) and a folder for the lake's
Parquet files. Two runs of the job `on_celery_workers` (two days), launched at once from a third "host", send
their steps to both workers."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stream_assets.core.lake import LakeError, connect_lake
from stream_assets.core.state import PostgresState, RequestIds
from stream_assets.core.warehouse import Warehouse
from stream_assets_tests.conftest import STREAMAPI_KEY, VENV_BIN, ducklake_catalog, missing_service

REPO = Path(__file__).resolve().parents[2]
DAYS = ["2026-03-01", "2026-03-02"]
TIMESERIES = ["audience_timeseries", "traffic_timeseries", "bandwidth_timeseries", "buffering_timeseries"]
REDIS_DB = 13  # a database of its own on the shared Redis


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


def test_runs_on_two_worker_hosts_share_rids_lake_and_instance(postgres_database, redis_url, cli_env, streamapi,
                                                               tmp_path, monkeypatch):
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
              "STREAM_ASSETS_CELERY_BROKER": broker, "PYTHONUNBUFFERED": "1"}
    celery_yaml = tmp_path / "celery.yaml"
    celery_yaml.write_text((REPO / "deploy" / "celery.yaml").read_text().replace("redis://127.0.0.1:6379/0", broker))

    hosts = {name: _host(tmp_path, name, shared) for name in ("host-a", "host-b", "launcher")}
    workers, logs = [], []
    try:
        for name in ("host-a", "host-b"):
            logs.append(tmp_path / f"{name}.log")
            workers.append(subprocess.Popen(
                [str(VENV_BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(celery_yaml),
                 "-n", name, "--", "--concurrency=1"],
                env=hosts[name], cwd=hosts[name]["HOME"], stdout=logs[-1].open("w"), stderr=subprocess.STDOUT,
                start_new_session=True))
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
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

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
    # Every step of both runs went through a worker, and both workers took some.
    assert len(succeeded) >= 2 * 12 and set(succeeded) == set(on_worker)
    assert {name.split("@")[0] for name in on_worker.values()} == {"host-a", "host-b"}

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
    for name in ("host-a", "host-b", "launcher"):
        data_dir = Path(hosts[name]["STREAM_ASSETS_DATA_DIR"])
        assert [p.name for p in data_dir.rglob("*") if p.suffix in (".sqlite", ".duckdb", ".lock")] == []
