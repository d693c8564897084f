"""The code location through the `dagster` CLI, in subprocesses, against the session's emulators."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def dagster(env: dict, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(["dagster", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_definitions_validate(cli_env):
    result = dagster(cli_env, "definitions", "validate", "-m", "stream_assets")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_importing_the_package_needs_no_secrets_and_opens_nothing(cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if not k.startswith(("STREAMROOT", "STREAMTIME", "STREAMAPI", "STREAMONE"))}
    env["STREAM_ASSETS_DATA_DIR"] = str(tmp_path / "untouched")
    script = "import stream_assets; print(len(list(stream_assets.defs.assets)))"
    result = subprocess.run(["python", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip()) >= 11
    assert not (tmp_path / "untouched").exists()


def test_asset_materialize_writes_a_partition_range(cli_env, streamroot_emulator):
    streamroot_emulator.clear()
    result = dagster(cli_env, "asset", "materialize", "-m", "stream_assets", "--select", "group:streamroot",
                     "--partition-range", "2026-03-01...2026-03-03")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with duckdb.connect(f"{cli_env['STREAM_ASSETS_DATA_DIR']}/warehouse.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM streamroot.traffic_timeseries").fetchone() == (3 * 288,)
        assert conn.execute("SELECT count(DISTINCT day) FROM streamroot.daily_kpis").fetchone() == (3,)
    assert len(streamroot_emulator.requests_to("traffic/timeseries")) == 1
    assert cli_env["STREAMROOT_API_KEY"] not in result.stdout + result.stderr


def test_concurrent_runs_for_different_partitions_all_succeed(cli_env):
    days = ["2026-04-01", "2026-04-02", "2026-04-03", "2026-04-04"]
    runs = [
        # Five assets a run (twenty writers) queue on the warehouse as the whole group does, in a third of the
        # time: each step is a process that imports Dagster. daily_kpis joins the three daily aggregates.
        subprocess.Popen(["dagster", "asset", "materialize", "-m", "stream_assets", "--select", ",".join(
                             f"streamroot/{name}" for name in ("audience_timeseries", "audience", "buffering", "traffic",
                                                               "daily_kpis")), "--partition", day],
                         cwd=REPO, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for day in days
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * len(days), "\n".join(o[-1500:] for o in outputs)
    with duckdb.connect(f"{cli_env['STREAM_ASSETS_DATA_DIR']}/warehouse.duckdb", read_only=True) as conn:
        per_day = conn.execute(
            "SELECT CAST(ts AS DATE)::VARCHAR, count(*) FROM streamroot.audience_timeseries GROUP BY 1 ORDER BY 1"
        ).fetchall()
        kpi_days = conn.execute("SELECT day::VARCHAR FROM streamroot.daily_kpis ORDER BY 1").fetchall()
    assert per_day == [(day, 288) for day in days]
    assert kpi_days == [(day,) for day in days]


def test_streamapi_assets_through_the_cli(cli_env, streamapi, tmp_path):
    env = {**cli_env, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir()
    poll = "2026-11-25T10:00:00Z"
    add_poll = ("import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('streamapi_live_polls', "
                f"['{poll}'])")
    assert subprocess.run(["python", "-c", add_poll], env=env, cwd=REPO, timeout=120).returncode == 0
    for args in (["--select", "streamapi/video_recordings", "--partition-range", "2026-03-01...2026-03-03"],
                 ["--select", "streamapi/themes"],
                 ["--select", "streamapi/live_sessions", "--partition", poll]):
        result = dagster(env, "asset", "materialize", "-m", "stream_assets", *args)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert cli_env["STREAMAPI_SECRET"] not in result.stdout + result.stderr
    with duckdb.connect(f"{cli_env['STREAM_ASSETS_DATA_DIR']}/warehouse.duckdb", read_only=True) as conn:
        days = conn.execute("SELECT DISTINCT CAST(creation_date AS DATE)::VARCHAR FROM streamapi.video_recordings ORDER BY 1").fetchall()
        assert days and {d for (d,) in days} <= {"2026-03-01", "2026-03-02", "2026-03-03"}
        assert conn.execute("SELECT count(*) FROM streamapi.themes").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM streamapi.live_sessions").fetchone() == (2,)
    assert len(streamapi.requests_to("video/list")) == 1


def test_streamone_assets_through_the_cli(cli_env, streamone):
    import datetime as dt

    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    for args in (["--select", "streamone/items", "--partition-range", "2026-10-01...2026-10-07"],
                 ["--select", "streamone/livestreams"],
                 ["--select", "streamone/item_views_daily", "--partition", today]):
        result = dagster(cli_env, "asset", "materialize", "-m", "stream_assets", *args)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert cli_env["STREAMONE_PSK"] not in result.stdout + result.stderr
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    expected = [i for i in streamone.items() if start <= i["datecreated"] < start + dt.timedelta(days=7)]
    with duckdb.connect(f"{cli_env['STREAM_ASSETS_DATA_DIR']}/warehouse.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM streamone.items").fetchone() == (len(expected),)
        assert conn.execute("SELECT count(*) FROM streamone.livestreams").fetchone() == (3,)
        assert conn.execute("SELECT count(DISTINCT day) FROM streamone.item_views_daily").fetchone() == (1,)


def test_streamtime_assets_through_the_cli(cli_env, streamtime):
    daily = ",".join(f"streamtime/{n}" for n in ("logged_times", "logged_expenses", "invoices", "quotes", "jobs",
                                                 "daily_statistics"))
    snapshots = ",".join(f"streamtime/{n}" for n in ("companies", "contacts", "users", "job_items", "job_item_users"))
    for args in (["--select", daily, "--partition-range", "2026-03-02...2026-03-04"], ["--select", snapshots]):
        result = dagster(cli_env, "asset", "materialize", "-m", "stream_assets", *args)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert cli_env["STREAMTIME_API_KEY"] not in result.stdout + result.stderr
    with duckdb.connect(f"{cli_env['STREAM_ASSETS_DATA_DIR']}/warehouse.duckdb", read_only=True) as conn:
        days = conn.execute("SELECT DISTINCT date::VARCHAR FROM streamtime.logged_times ORDER BY 1").fetchall()
        assert days == [("2026-03-02",), ("2026-03-03",), ("2026-03-04",)]
        assert conn.execute("SELECT count(*) FROM streamtime.users").fetchone() == (8,)
    assert streamtime.counters["throttled"] == 0


def test_dg_check_defs_loads_the_project(cli_env):
    result = subprocess.run(["dg", "check", "defs"], cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_launch_of_a_range_records_each_days_own_row_count(cli_env, tmp_path):
    """A 7-day single-run backfill through `dg launch`: the instance holds one materialization per day, each
    with that day's 288 rows (not the run's 2,016), and the run's totals under *_in_run names."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**cli_env, "DAGSTER_HOME": str(home)}
    result = subprocess.run(["dg", "launch", "--assets", "streamroot/traffic_timeseries",
                             "--partition-range", "2026-03-01...2026-03-07"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey(["streamroot", "traffic_timeseries"]), limit=50).records
        runs = {r.run_id for r in records}
    by_day = {r.asset_materialization.partition: r.asset_materialization.metadata for r in records}
    assert len(runs) == 1
    assert sorted(by_day) == [f"2026-03-0{d}" for d in range(1, 8)]
    assert {day: m["dagster/row_count"].value for day, m in by_day.items()} == {day: 288 for day in by_day}
    assert {m["rows_in_run"].value for m in by_day.values()} == {7 * 288}
    with duckdb.connect(f"{cli_env['STREAM_ASSETS_DATA_DIR']}/warehouse.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM streamroot.traffic_timeseries").fetchone() == (7 * 288,)


def test_the_demo_is_quiet_and_a_second_start_fetches_only_missing_days(tmp_path):
    import datetime as dt

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM", "DAGSTER_HOME"))}
    env["STREAM_ASSETS_DATA_DIR"] = str(tmp_path / "data")
    # The client's limiter remembers the first start's ~50 Streamtime requests; at the documented 60 a minute the
    # third start would wait ~45 s for them to leave the window. Each start's emulator is new, so twice the
    # budget on the client's side never meets a 429 here.
    env["STREAMTIME_RATE_LIMITS"] = "120/60,720/3600"

    def demo(*args: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "stream_assets.demo", "--no-ui", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        return (result.stdout + result.stderr).splitlines()

    first = demo("--days", "3")
    assert len(first) < 40, "\n".join(first)
    progress = [line for line in first if "assets materialized" in line]
    assert [line.split()[1] for line in progress] == ["streamroot", "streamapi", "streamone", "streamtime"]
    groups = [line.split()[2].split("/") for line in progress]  # "15/15" assets of the group materialized
    assert all(done == total for done, total in groups)
    assert progress[-1].split(" assets done")[0].split()[-1] == f"{sum(int(t) for _, t in groups)}/{sum(int(t) for _, t in groups)}"
    assert not any(" - DEBUG - " in line or "dagster.yaml" in line for line in first), "\n".join(first)

    again = demo("--days", "3")
    assert any("nothing to fetch" in line for line in again), "\n".join(again)

    today = dt.datetime.now(dt.timezone.utc).date()
    older = (today - dt.timedelta(days=4)).isoformat()
    wider = demo("--days", "4")  # one more day back: only that day is fetched
    assert any(f"days {older}...{older}" in line for line in wider if line.split()[1] == "streamroot"), "\n".join(wider)
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        per_day = conn.execute("SELECT CAST(ts AS DATE), count(*) FROM streamroot.traffic_timeseries GROUP BY 1").fetchall()
        polls = conn.execute("SELECT count(DISTINCT poll_time) FROM streamapi.live_sessions").fetchone()
    assert sorted(per_day) == [(today - dt.timedelta(days=n), 288) for n in range(4, 0, -1)]
    assert polls == (1,)  # the first poll only: later starts leave new polls to the sensor
