"""Streamtime assets in-process and as concurrent runs: rows equal to the emulator's records on the key columns,
the requests the emulator saw, no 429; the statistics; the budget-aware sensor and schedule."""

import datetime as dt
import os
from collections import Counter

import dagster as dg
import duckdb
import pandas as pd

from stream_assets.core.emulator import Reply
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamtime.assets import DAILY_FIGURES, STATISTICS_VIEWS, assets, daily_assets, snapshot_assets
from stream_assets.core.ratelimit import parse_budgets
from stream_assets.streamtime.emulator import StreamtimeEmulator, pages_needed
from stream_assets.streamtime.entities import ENTITIES, BY_NAME
from stream_assets.streamtime.query import And, Comparison
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets.streamtime.sensors import REQUESTS_PER_PARTITION, streamtime_budget_sensor, streamtime_daily_schedule
from stream_assets_tests.conftest import STREAMTIME_KEY, run_processes
from stream_assets_tests.streamtime.expect import expected_rows, key_rows, searches_needed

FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 3, 31)
RANGE = {"dagster/asset_partition_range_start": FIRST.isoformat(), "dagster/asset_partition_range_end": LAST.isoformat()}
DAILY = [e for e in ENTITIES if e.partitioned]
WIDE_LIMITS = "120/60,720/3600"


def assert_tables_match(emulator, read_table, first=FIRST, last=LAST, entities=ENTITIES):
    for entity in entities:
        rows = read_table(entity.name)
        window = (first, last) if entity.partitioned else ()
        assert len(rows) and key_rows(rows, entity) == expected_rows(emulator, entity, *window), entity.name


def assert_statistics_match(emulator, statistics: pd.DataFrame, first=FIRST, last=LAST):
    statistics = statistics.assign(day=pd.to_datetime(statistics.day).dt.date)
    assert list(statistics.day) == [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    for row in statistics.itertuples():
        logged = emulator.records("time", row.day, row.day)
        invoices = emulator.records("invoices", row.day, row.day)
        assert row.logged_minutes == sum(r["minutes"] for r in logged) and row.logged_time_entries == len(logged)
        assert row.invoices == len(invoices)
        assert round(row.invoice_total_ex_tax, 2) == round(sum(r["invoiceCurrencyTotalAmountExTax"] for r in invoices), 2)


def test_every_asset_over_a_range_in_one_run(streamtime, resources, warehouse):
    # Twice the documented per-minute budget, on both sides: the test's ~60 requests fit one window instead of
    # waiting a minute for the next (the waits themselves: core/test_ratelimit.py, bench/streamtime_budget.py).
    streamtime.request_limits = parse_budgets(WIDE_LIMITS, "requests")
    resources = {**resources, "streamtime": StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url,
                                                               rate_limits=WIDE_LIMITS)}
    result = dg.materialize(assets, resources=resources, selection=[a.key for a in daily_assets], tags=RANGE)
    assert result.success
    assert dg.materialize(assets, resources=resources, selection=[a.key for a in snapshot_assets]).success
    assert_tables_match(streamtime, lambda name: warehouse.query(f"SELECT * FROM streamtime.{name}"))
    assert_statistics_match(streamtime, warehouse.query("SELECT * FROM streamtime.daily_statistics ORDER BY day"))
    assert streamtime.counters["throttled"] == 0
    # The requests seen: one setup per view and run, then the fewest pages of 1000 with the date window's query
    # (plus a probe after a lone short page, proving the server does not cap pages).
    setups = Counter(r.query["search_view"][0] for r in streamtime.requests_to("/search/setup"))
    assert setups == Counter({e.view: 1 for e in ENTITIES})
    assert Counter(r.query["search_view"][0] for r in streamtime.requests_to("/report/setup")) == \
        Counter({v: 1 for v in STATISTICS_VIEWS})
    pages = Counter(s["view"] for s in streamtime.searches)
    for entity in DAILY:
        searches = [s for s in streamtime.searches if s["view"] == entity.view]
        wide = (FIRST - dt.timedelta(days=1), LAST + dt.timedelta(days=1)) if entity.name == "jobs" else (FIRST, LAST)
        selector = entity.date_selectors[0]
        assert all(s["query"] == And((Comparison(selector, ">=", wide[0].isoformat()),
                                      Comparison(selector, "<=", wide[1].isoformat()))) for s in searches)
        assert all(s["limit"] == 1000 for s in searches)
        # a probe after a lone short page, unless a larger page was served earlier in the run (any step)
        records = len(streamtime.records(entity.view, *wide))
        assert pages_needed(records) <= pages[entity.view] <= searches_needed(records)
    assert pages["time"] >= 2  # logged time needs several pages of 1000
    # /report: 90 days in chunks of 31 with daily buckets, per view.
    assert sum(r.path == "/v2/report" for r in streamtime.requests) == 3 * len(STATISTICS_VIEWS)
    metadata = result.asset_materializations_for_node("streamtime__logged_times")[0].metadata
    assert metadata["requests_in_run"].value == 1 + pages["time"] and metadata["throttled_429_in_run"].value == 0
    assert metadata["rows_in_run"].value == len(streamtime.records("time", FIRST, LAST))
    assert metadata["fields_not_understood"].value == {} and metadata["date_selector"].value == "logged_time_date"
    # Re-materializing one day replaces that day only.
    before = warehouse.query("SELECT * EXCLUDE (record) FROM streamtime.invoices ORDER BY id")
    dg.materialize(assets, resources=resources, selection=[dg.AssetKey(["streamtime", "invoices"])], partition_key="2026-02-02")
    pd.testing.assert_frame_equal(warehouse.query("SELECT * EXCLUDE (record) FROM streamtime.invoices ORDER BY id"), before)


SCALED_LIMITS = "40/10,720/3600"  # the emulator's per-minute budget at 6 times the speed: concurrent runs share it
# The runs get exactly the server's budget: the limiter holds it whatever the admission-to-arrival latency.
CLIENT_LIMITS = SCALED_LIMITS


def _materialize(base_url: str, data_dir: str, database: str, selection: list[str], first: str | None, last: str | None):
    os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    resources = {"streamtime": StreamtimeResource(api_key=STREAMTIME_KEY, base_url=base_url, rate_limits=CLIENT_LIMITS),
                 "warehouse": Warehouse(database=database)}
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last} if first else {}
    keys = [dg.AssetKey(k.split("/")) for k in selection]
    assert dg.materialize(assets, resources=resources, selection=keys, tags=tags).success


def test_every_asset_as_concurrent_runs(private_data_dir, tmp_path):
    with StreamtimeEmulator({STREAMTIME_KEY: "Concurrent"}, seed=8, request_limits=SCALED_LIMITS) as emulator:
        concurrent_runs(emulator, private_data_dir, tmp_path)


def concurrent_runs(streamtime, private_data_dir, tmp_path):
    database = str(tmp_path / "concurrent.duckdb")
    daily = [a.key.to_user_string() for a in daily_assets]
    months = [("2026-01-01", "2026-02-15"), ("2026-02-16", "2026-03-31")]
    runs = [(streamtime.base_url, str(private_data_dir), database, daily, first, last) for first, last in months]
    runs.append((streamtime.base_url, str(private_data_dir), database, [a.key.to_user_string() for a in snapshot_assets],
                 None, None))
    assert run_processes(_materialize, runs, timeout=240) == [0] * len(runs)
    assert streamtime.counters["throttled"] == 0 and streamtime.counters["requests"] > 40  # the budget was shared
    with duckdb.connect(database, read_only=True) as conn:
        assert_tables_match(streamtime, lambda name: conn.execute(f"SELECT * FROM streamtime.{name}").df())
        assert_statistics_match(streamtime, conn.execute("SELECT * FROM streamtime.daily_statistics ORDER BY day").df())
    # At most one setup per view per run (two runs read the dated views, one the snapshots); a setup one run
    # remembered in the shared state spares the other its request.
    setups = Counter(r.query["search_view"][0] for r in streamtime.requests_to("/search/setup"))
    assert set(setups) == {e.view for e in ENTITIES}
    assert all(setups[e.view] <= (2 if e.partitioned else 1) for e in ENTITIES)
    report_setups = Counter(r.query["search_view"][0] for r in streamtime.requests_to("/report/setup"))
    assert set(report_setups) == set(STATISTICS_VIEWS) and max(report_setups.values()) <= 2


def test_wrapped_records_and_odd_fields_through_the_assets(resources, warehouse):
    # Logged times and jobs wrapped under names nobody guessed; jobs numbered by integers, some null.
    overrides = {"invoices": {"dueDate": "in thirty days", "newTotal": 12}}
    with StreamtimeEmulator({STREAMTIME_KEY: "W"}, seed=8, wrapped=True, record_overrides=overrides,
                            wrapper_keys={"time": "timeEntry", "jobs": "project"}) as emulator:
        resources = {**resources, "streamtime": StreamtimeResource(api_key=STREAMTIME_KEY, base_url=emulator.base_url)}
        week = {"dagster/asset_partition_range_start": "2026-03-02", "dagster/asset_partition_range_end": "2026-03-08"}
        result = dg.materialize(assets, resources=resources, tags=week,
                                selection=[dg.AssetKey(["streamtime", e.name]) for e in DAILY])
        assert result.success
        assert_tables_match(emulator, lambda name: warehouse.query(f"SELECT * FROM streamtime.{name}"),
                            dt.date(2026, 3, 2), dt.date(2026, 3, 8), DAILY)
    invoices = warehouse.query("SELECT due_date, json_extract(record, '$.invoice.newTotal')::INT AS new_total "
                               "FROM streamtime.invoices")
    assert len(invoices) and invoices.due_date.isna().all() and (invoices.new_total == 12).all()
    metadata = result.asset_materializations_for_node("streamtime__invoices")[0].metadata
    assert metadata["fields_not_understood"].value == {"due_date": len(invoices)}
    logged = warehouse.query("SELECT job_item_name, json_extract(record, '$.timeEntry.id')::BIGINT AS wrapped_id, id "
                             "FROM streamtime.logged_times")
    assert logged.job_item_name.notna().all() and (logged.wrapped_id == logged.id).all()
    jobs = warehouse.query("SELECT number, json_extract(record, '$.project.number') AS sent FROM streamtime.jobs")
    assert jobs.number.isna().any() and jobs.number.dropna().str.fullmatch(r"\d+").all()
    assert (jobs.sent.isin(["null"]) == jobs.number.isna()).all()


def test_a_selector_the_setup_leaves_open_fails_the_asset_clearly_until_set(resources, warehouse):
    with StreamtimeEmulator({STREAMTIME_KEY: "S"}, date_filters={"quotes": ("sent_day", "approved_day")}) as emulator:
        resource = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=emulator.base_url)
        selection = [dg.AssetKey(["streamtime", "quotes"])]
        week = {"dagster/asset_partition_range_start": "2026-03-02", "dagster/asset_partition_range_end": "2026-03-08"}
        result = dg.materialize(assets, resources={**resources, "streamtime": resource}, selection=selection,
                                tags=week, raise_on_error=False)
        assert not result.success
        failure = str(result.get_step_failure_events()[0].event_specific_data.error)
        assert "sent_day" in failure and "approved_day" in failure and "date_selectors" in failure
        chosen = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=emulator.base_url, date_selectors={"quotes": "sent_day"})
        assert dg.materialize(assets, resources={**resources, "streamtime": chosen}, selection=selection, tags=week).success
        assert emulator.searches[-1]["query"].parts[0].selector == "sent_day"
        assert_tables_match(emulator, lambda name: warehouse.query(f"SELECT * FROM streamtime.{name}"),
                            dt.date(2026, 3, 2), dt.date(2026, 3, 8), [BY_NAME["quotes"]])


def test_every_streamtime_asset_is_in_the_pool():
    assert {a.node_def.pool for a in assets} == {"streamtime"}
    assert len(DAILY_FIGURES) == 5 and {a.key.path[1] for a in assets} >= {
        "job_phases", "job_milestones", "invoice_line_items", "quote_line_items"}


def sensor_tick(resource, instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"streamtime": resource})
    return streamtime_budget_sensor(context)


def test_sensor_asks_for_missing_days_newest_first_within_the_budget(streamtime, monkeypatch, instance):
    monkeypatch.setenv("STREAMTIME_SENSOR_LOOKBACK_DAYS", "30")
    resource = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url, rate_limits="60/3600")
    result = sensor_tick(resource, instance)
    keys = [r.partition_key for r in result.run_requests]
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    assert keys[0] == yesterday and keys == sorted(keys, reverse=True)
    assert len(keys) == int(60 * 0.8 // REQUESTS_PER_PARTITION) >= 1
    again = sensor_tick(resource, instance, result.cursor)  # in flight: not asked twice
    assert not set(r.partition_key for r in again.run_requests) & set(keys)


def test_sensor_asks_for_nothing_when_the_budget_is_spent(streamtime, private_data_dir, instance):
    resource = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url, rate_limits="5/3600")
    limiter = resource.limiter()
    for _ in range(5):
        limiter.settle(limiter.acquire())  # settled: an unsettled request holds the processing budget
    result = sensor_tick(resource, instance)
    assert isinstance(result, dg.SkipReason) and "budget spent" in result.skip_message


def test_one_days_run_costs_what_the_sensor_counts(streamtime, resources):
    result = dg.materialize(assets, resources=resources, selection=[a.key for a in daily_assets], partition_key="2026-03-03")
    day = dt.date(2026, 3, 3)
    # A search whose day has no record ends on its first (empty) page: no probe for it.
    empty_days = sum(1 for e in DAILY if not streamtime.records(e.view, day - dt.timedelta(days=e.name == "jobs"),
                                                                day + dt.timedelta(days=e.name == "jobs")))
    # the sensor's count is the most a day costs: probes after short pages can be spared within the run
    assert result.success and len(streamtime.requests) <= REQUESTS_PER_PARTITION - empty_days
    assert len(streamtime.requests_to("/setup")) == len(DAILY) + len(STATISTICS_VIEWS)


def test_setups_are_remembered_for_the_next_runs_of_the_organisation(streamtime, resources):
    keys = [a.key for a in daily_assets]
    assert dg.materialize(assets, resources=resources, selection=keys, partition_key="2026-03-03").success
    streamtime.clear()
    assert dg.materialize(assets, resources=resources, selection=keys, partition_key="2026-03-04").success
    assert streamtime.requests_to("/setup") == []  # the second run asked no setup
    # a search refused for its selector (renamed since) makes the next run ask the view's setup again
    streamtime.fail_next(Reply.json({"message": "unknown selector"}, status=400), path_contains="/search")
    assert not dg.materialize(assets, resources=resources, selection=[keys[0]], partition_key="2026-03-05",
                              raise_on_error=False).success
    streamtime.clear()
    assert dg.materialize(assets, resources=resources, selection=[keys[0]], partition_key="2026-03-05").success
    assert [r.query["search_view"][0] for r in streamtime.requests_to("/search/setup")] == [DAILY[0].view]


def test_sensor_skips_days_materialized_after_they_closed(streamtime, resources, monkeypatch, instance):
    monkeypatch.setenv("STREAMTIME_SENSOR_LOOKBACK_DAYS", "2")
    today = dt.datetime.now(dt.timezone.utc).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in (1, 2)]
    for day in days:
        dg.materialize(assets, resources=resources, selection=[a.key for a in daily_assets], partition_key=day, instance=instance)
    result = sensor_tick(resources["streamtime"], instance)
    assert isinstance(result, dg.SkipReason) and "materialized after it closed" in result.skip_message


def test_daily_schedule_targets_yesterday():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 25, 0, 30, tzinfo=dt.timezone.utc))
    assert streamtime_daily_schedule(context).partition_key == "2026-11-24"


def test_long_budget_waits_are_warnings_so_quiet_consoles_say_why_a_run_stalls():
    from types import SimpleNamespace

    from stream_assets.streamtime.assets import LONG_WAIT_SECONDS, _waits

    logged = []
    log = SimpleNamespace(info=lambda m: logged.append(("info", m)), warning=lambda m: logged.append(("warning", m)))
    report = _waits(SimpleNamespace(log=log))
    report(1.5, "requests 60/60s")
    report(LONG_WAIT_SECONDS + 30, "requests 60/60s")
    assert logged == [("info", "waiting ~1.5s for Streamtime budget (requests 60/60s)"),
                      ("warning", "waiting ~40.0s for Streamtime budget (requests 60/60s): the organisation's limits "
                                  "leave no room before then")]
