"""StreamOne assets in-process against the emulator."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.warehouse import Table
from stream_assets.streamone.assets import ITEMS as ITEMS_TABLE
from stream_assets.streamone.assets import assets
from stream_assets.streamone.client import PAGE_SIZE
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


def expected_rows(streamone, first: str, last: str) -> pd.DataFrame:
    """The emulator's items of the days first..last as `streamone.items` stores them (views aside: they
    grow by the second)."""
    def seconds(duration: str) -> float:
        hours, minutes, rest = duration.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    return pd.DataFrame([{
        "id": i["id"], "title": i["title"], "type": i["type"], "description": i["description"],
        "duration": seconds(i["duration"]), "datecreated": pd.Timestamp(i["datecreated"]).tz_localize(None),
        "dateaired": pd.Timestamp(i["dateaired"]).tz_localize(None), "account_id": i["account"]["id"],
        "account_name": i["account"]["name"], "archived": i["archived"]} for i in expected_items(streamone, first, last)])


def stored_rows(warehouse) -> pd.DataFrame:
    columns = ", ".join(c for c in ITEMS_TABLE.column_names if c != "views")
    return warehouse.query(f"SELECT {columns} FROM streamone.items ORDER BY id")


def served_for(streamone, first: str, last: str) -> int:
    """How many items the date filter of days first..last matches: its end instant is inclusive."""
    start = dt.datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = dt.datetime.fromisoformat(last).replace(tzinfo=UTC) + dt.timedelta(days=1)
    return sum(start <= i["datecreated"] <= end for i in streamone.items())


def a_day_with_archived_and_live_items(streamone) -> str:
    days = {}
    for item in streamone.items():
        days.setdefault(item["datecreated"].date().isoformat(), set()).add(item["archived"])
    return next(day for day, archived in sorted(days.items()) if day >= "2026-09-01" and archived == {True, False})


def test_items_partition_stores_every_item_of_the_day_archived_ones_too(streamone, resources, warehouse):
    day = a_day_with_archived_and_live_items(streamone)
    result = run(resources, ITEMS, partition_key=day)
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    pd.testing.assert_frame_equal(stored_rows(warehouse), expected_rows(streamone, day, day), check_dtype=False)
    assert len(streamone.requests) <= -(-served_for(streamone, day, day) // PAGE_SIZE) + 1
    assert [r.form()["archived"] for r in streamone.requests] == [[""]] * len(streamone.requests)


def test_a_ranged_backfill_asks_for_the_whole_range_in_one_listing(streamone, resources, warehouse):
    tags = {"dagster/asset_partition_range_start": "2026-07-01", "dagster/asset_partition_range_end": "2026-09-30"}
    assert run(resources, ITEMS, tags=tags).success
    served = served_for(streamone, "2026-07-01", "2026-09-30")
    assert served > 2 * PAGE_SIZE and len(streamone.requests) <= -(-served // PAGE_SIZE) + 1
    assert {(r.form()["mindatecreated"][0], r.form()["maxdatecreated"][0]) for r in streamone.requests} == {
        ("2026-07-01 00:00:00", "2026-10-01 00:00:00")}
    expected = expected_rows(streamone, "2026-07-01", "2026-09-30")
    assert expected.archived.any()
    pd.testing.assert_frame_equal(stored_rows(warehouse), expected, check_dtype=False)
    before = stored_rows(warehouse)
    streamone.clear()
    run(resources, ITEMS, partition_key="2026-09-15")
    assert len(streamone.requests) == 1  # a day of ~4 items: one short page
    pd.testing.assert_frame_equal(stored_rows(warehouse), before)


def test_an_items_table_written_before_archived_existed_gains_the_column(streamone, resources, warehouse):
    old = Table("streamone", "items", [c for c in ITEMS_TABLE.columns if c[0] != "archived"], "datecreated", key=("id",))
    with warehouse.get_connection() as conn:
        conn.execute("CREATE SCHEMA streamone")
        conn.execute(old.ddl())
        conn.execute("INSERT INTO streamone.items (id, title, datecreated, views) "
                     "VALUES ('old-item0001', 'kept', '2026-08-01 12:00', 5)")
    day = a_day_with_archived_and_live_items(streamone)  # after 2026-08-01
    assert run(resources, ITEMS, partition_key=day).success
    rows = warehouse.query("SELECT id, archived FROM streamone.items ORDER BY id")
    (old_row,) = rows[rows.id == "old-item0001"].archived
    assert pd.isna(old_row)  # another day's row, from before the column: unknown
    assert rows[rows.id != "old-item0001"].archived.tolist() == expected_rows(streamone, day, day).archived.tolist()


def test_a_failure_mid_paging_leaves_the_old_partition_intact(streamone, resources, warehouse):
    tags = {"dagster/asset_partition_range_start": "2026-07-01", "dagster/asset_partition_range_end": "2026-08-31"}
    run(resources, ITEMS, tags=tags)  # more than one page of items
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
    result = run(resources, ITEMS, tags=tags, raise_on_error=False)
    streamone.handle = original
    assert not result.success and len(calls) == 2
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "StreamOne item/view (partition 2026-07-01...2026-08-31)" in failure.step_failure_data.error.cause.message
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
