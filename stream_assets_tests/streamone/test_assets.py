"""StreamOne assets in-process against the emulator."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.emulator import Reply
from stream_assets.streamone.assets import assets
from stream_assets.streamone.client import EARLY_STOP_MARGIN
from stream_assets.streamone.schedules import streamone_daily_snapshot, streamone_items_daily

UTC = dt.timezone.utc
ITEMS = dg.AssetKey(["streamone", "items"])
LIVE = dg.AssetKey(["streamone", "livestreams"])
VIEWS = dg.AssetKey(["streamone", "item_views_daily"])


def run(resources, key, **kwargs):
    return dg.materialize(assets, resources=resources, selection=[key], **kwargs)


def expected_items(streamone, first: str, last: str):
    start = dt.datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = dt.datetime.fromisoformat(last).replace(tzinfo=UTC) + dt.timedelta(days=1)
    return sorted((i for i in streamone.items() if start <= i["datecreated"] < end), key=lambda i: i["id"])


def test_items_partition_matches_the_emulator_and_passes_its_check(streamone, resources, warehouse):
    result = run(resources, ITEMS, partition_key="2026-10-01")
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    rows = warehouse.query("SELECT * FROM streamone.items ORDER BY id")
    expected = expected_items(streamone, "2026-10-01", "2026-10-01")
    assert rows.id.tolist() == [i["id"] for i in expected] and len(rows) > 0
    assert rows.datecreated.tolist() == [pd.Timestamp(i["datecreated"]).tz_localize(None) for i in expected]
    assert (rows.duration > 0).all() and rows.title.tolist() == [i["title"] for i in expected]


def test_a_ranged_backfill_reads_the_range_in_one_pass(streamone, resources, warehouse):
    tags = {"dagster/asset_partition_range_start": "2026-09-01", "dagster/asset_partition_range_end": "2026-09-30"}
    assert run(resources, ITEMS, tags=tags).success
    newer_than_start = sum(i["datecreated"] >= dt.datetime(2026, 9, 1, tzinfo=UTC) for i in streamone.items())
    assert len(streamone.requests) == -(-(newer_than_start + EARLY_STOP_MARGIN) // 100)  # one pass, not one per day
    assert len(warehouse.query("SELECT * FROM streamone.items")) == len(expected_items(streamone, "2026-09-01", "2026-09-30"))
    before = warehouse.query("SELECT id, datecreated, duration FROM streamone.items ORDER BY id")
    run(resources, ITEMS, partition_key="2026-09-15")
    after = warehouse.query("SELECT id, datecreated, duration FROM streamone.items ORDER BY id")
    pd.testing.assert_frame_equal(after, before)


def test_a_failure_mid_paging_leaves_the_old_partition_intact(streamone, resources, warehouse):
    run(resources, ITEMS, partition_key="2026-08-01")
    before = warehouse.query("SELECT * FROM streamone.items ORDER BY id")
    streamone.requests.clear()
    # the first page is served, the second fails
    original = streamone.handle
    calls = []

    def flaky(request):
        calls.append(request)
        if len(calls) == 2:
            return Reply.text("<html>maintenance page</html>", content_type="text/html")
        return original(request)

    streamone.handle = flaky
    result = run(resources, ITEMS, partition_key="2026-08-01", raise_on_error=False)
    streamone.handle = original
    assert not result.success and len(calls) == 2
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "StreamOne item/view (partition 2026-08-01)" in failure.step_failure_data.error.cause.message
    pd.testing.assert_frame_equal(warehouse.query("SELECT * FROM streamone.items ORDER BY id"), before)


def test_the_check_fails_on_a_non_positive_duration(streamone, resources):
    row = {"id": "zero-length1", "title": "t", "duration": "00:00:00.000", "datecreated": "2026-11-24 12:00:00",
           "views": 3, "account": {"id": "acc-news00001"}}
    streamone.fail_next(Reply.json({"header": {"status": 0, "statusmessage": "OK", "count": 1, "timezone": "UTC"},
                                    "body": [row]}))
    (check,) = run(resources, ITEMS, partition_key="2026-11-24").get_asset_check_evaluations()
    assert not check.passed and check.metadata["non_positive_durations"].value == 1


def test_livestreams_history_has_no_duplicates(streamone, resources, warehouse):
    run(resources, LIVE)
    run(resources, LIVE)
    rows = warehouse.query("SELECT * FROM streamone.livestreams ORDER BY title")
    assert rows.title.tolist() == ["Newsroom", "Parliament", "Sports Arena"]
    assert (rows.last_seen >= rows.first_seen).all()
    renamed = streamone.livestreams
    streamone.livestreams = lambda: [{**s, "title": s["title"] + " HD"} if s["title"] == "Newsroom" else s for s in renamed()]
    result = run(resources, LIVE)
    metadata = result.asset_materializations_for_node("streamone__livestreams")[0].metadata
    assert (metadata["versions_extended"].value, metadata["versions_inserted"].value) == (2, 1)
    assert warehouse.query("SELECT title FROM streamone.livestreams ORDER BY first_seen, title").title.tolist() == [
        "Newsroom", "Parliament", "Sports Arena", "Newsroom HD"]


def test_item_views_snapshot_today_and_refuse_past_days(streamone, resources, warehouse):
    today = dt.datetime.now(UTC).date().isoformat()
    assert run(resources, VIEWS, partition_key=today).success
    views = warehouse.query("SELECT * FROM streamone.item_views_daily")
    assert len(views) == len(streamone.items()) and set(views.day.dt.date.astype(str)) == {today}
    result = run(resources, VIEWS, partition_key="2026-03-01", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "cannot be backfilled" in failure.step_failure_data.error.message
    assert len(warehouse.query("SELECT * FROM streamone.item_views_daily")) == len(views)


@pytest.mark.parametrize(("schedule", "hour", "partition"), [
    (streamone_items_daily, 0, "2026-11-24"), (streamone_daily_snapshot, 23, "2026-11-25")])
def test_schedules_target_the_right_day(schedule, hour, partition):
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 25, hour, 20, tzinfo=UTC))
    assert schedule(context).partition_key == partition
