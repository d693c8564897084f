"""Streamtime assets in-process, the ranged backfill's request count, and the budget-aware sensor."""

import datetime as dt

import dagster as dg
import pandas as pd

from stream_assets.streamtime.assets import assets, daily_assets
from stream_assets.streamtime.emulator import pages_needed
from stream_assets.streamtime.entities import ENTITIES
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets.streamtime.sensors import REQUESTS_PER_PARTITION, streamtime_budget_sensor, streamtime_daily_schedule
from stream_assets_tests.conftest import STREAMTIME_KEY

RANGE = {"dagster/asset_partition_range_start": "2026-01-01", "dagster/asset_partition_range_end": "2026-03-31"}


def test_one_day_of_every_asset(streamtime, resources, warehouse):
    result = dg.materialize(assets, resources=resources, selection=[a.key for a in daily_assets], partition_key="2026-03-03")
    assert result.success
    for entity in (e for e in ENTITIES if e.partitioned):
        rows = warehouse.query(f"SELECT * FROM streamtime.{entity.name} ORDER BY id")
        expected = streamtime.records(entity.search_view, dt.date(2026, 3, 3), dt.date(2026, 3, 3))
        assert rows.id.tolist() == [r["id"] for r in expected]
    logged = warehouse.query("SELECT * FROM streamtime.logged_times")
    assert {"id", "user_id", "job_id", "date", "minutes", "job_item_name"} <= set(logged.columns)
    statistics = warehouse.query("SELECT * FROM streamtime.daily_statistics")
    assert statistics.logged_minutes.tolist() == [logged.minutes.sum()]
    assert statistics.logged_time_entries.tolist() == [len(logged)]
    metadata = result.asset_materializations_for_node("streamtime__logged_times")[0].metadata
    assert metadata["requests"].value == 1 and metadata["throttled_429"].value == 0
    assert metadata["seconds_waited_for_budget"].value == 0
    assert 720 - len(daily_assets) <= metadata["budget_left"].value["720 requests/3600s"] < 720


def test_snapshots_replace_whole(streamtime, resources, warehouse):
    snapshots = [dg.AssetKey(["streamtime", e.name]) for e in ENTITIES if not e.partitioned]
    assert dg.materialize(assets, resources=resources, selection=snapshots).success
    assert dg.materialize(assets, resources=resources, selection=snapshots).success
    assert len(warehouse.query("SELECT * FROM streamtime.companies")) == 25
    assert warehouse.query("SELECT count(*) AS n FROM streamtime.job_item_users").n.item() == len(streamtime.records(17))
    contacts = warehouse.query("SELECT * FROM streamtime.contacts")
    assert contacts.company_name.notna().all() and len(contacts) == 60


def test_a_ranged_backfill_costs_the_pages_needed_and_nothing_more(streamtime, resources, warehouse):
    result = dg.materialize(assets, resources=resources, selection=[a.key for a in daily_assets], tags=RANGE)
    assert result.success
    first, last = dt.date(2026, 1, 1), dt.date(2026, 3, 31)
    expected = {e.search_view: pages_needed(len(streamtime.records(e.search_view, first, last)))
                for e in ENTITIES if e.partitioned}
    seen = {}
    for request in streamtime.requests:
        if request.path == "/v2/search":
            view = int(request.query["search_view"][0])
            seen[view] = seen.get(view, 0) + 1
    assert seen == expected and expected[8] >= 2  # logged time needs several pages of 1000
    assert len(streamtime.requests_to("statistics")) == 1
    assert len(warehouse.query("SELECT * FROM streamtime.logged_times")) == len(streamtime.records(8, first, last))
    before = warehouse.query("SELECT * FROM streamtime.invoices ORDER BY id")
    dg.materialize(assets, resources=resources, selection=[dg.AssetKey(["streamtime", "invoices"])], partition_key="2026-02-02")
    pd.testing.assert_frame_equal(warehouse.query("SELECT * FROM streamtime.invoices ORDER BY id"), before)


def test_every_streamtime_asset_is_in_the_pool():
    assert {a.node_def.pool for a in assets} == {"streamtime"}


def sensor_tick(resource, instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"streamtime": resource})
    return streamtime_budget_sensor(context)


def test_sensor_asks_for_missing_days_newest_first_within_the_budget(streamtime, monkeypatch, instance):
    monkeypatch.setenv("STREAMTIME_SENSOR_LOOKBACK_DAYS", "30")
    resource = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url, rate_limits="40/3600")
    result = sensor_tick(resource, instance)
    keys = [r.partition_key for r in result.run_requests]
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    assert keys[0] == yesterday and keys == sorted(keys, reverse=True)
    assert len(keys) == int(40 * 0.8 // REQUESTS_PER_PARTITION)
    again = sensor_tick(resource, instance, result.cursor)  # in flight: not asked twice
    assert not set(r.partition_key for r in again.run_requests) & set(keys)


def test_sensor_asks_for_nothing_when_the_budget_is_spent(streamtime, private_data_dir, instance):
    resource = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url, rate_limits="5/3600")
    limiter = resource.limiter()
    for _ in range(5):
        limiter.acquire()
    result = sensor_tick(resource, instance)
    assert isinstance(result, dg.SkipReason) and "budget spent" in result.skip_message


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
