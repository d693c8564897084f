"""StreamAPI assets in-process and the live-session sensor, against the emulator."""

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.windows import TimeWindow
from stream_assets.streamapi.assets import LIVE_POLLS, assets
from stream_assets.streamapi.sensors import streamapi_live_sessions_sensor
from stream_assets_tests.conftest import STREAMAPI_KEY

RECORDINGS = dg.AssetKey(["streamapi", "video_recordings"])
THEMES = dg.AssetKey(["streamapi", "themes"])
LIVE = dg.AssetKey(["streamapi", "live_sessions"])


def run(resources, selection, **kwargs):
    return dg.materialize(assets, resources=resources, selection=[selection], **kwargs)


def range_tags(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def test_recordings_partition_holds_that_days_recordings(streamapi, resources, warehouse):
    assert run(resources, RECORDINGS, partition_key="2026-03-01").success
    window = TimeWindow.for_days("2026-03-01")
    expected = streamapi.recordings(STREAMAPI_KEY, window.start_ms, window.end_ms - 1)
    rows = warehouse.query("SELECT * FROM streamapi.video_recordings ORDER BY creation_date")
    assert rows.id.tolist() == [v["id"] for v in expected]
    assert rows["size"].tolist() == [int(v["size"]) for v in expected]
    assert rows.creation_date.tolist() == [pd.Timestamp(int(v["creation_date"]), unit="ms") for v in expected]


def test_a_ranged_backfill_reads_a_month_per_request_and_reruns_are_idempotent(streamapi, resources, warehouse):
    assert run(resources, RECORDINGS, tags=range_tags("2026-01-01", "2026-03-31")).success
    assert len(streamapi.requests_to("video/list")) == 3  # 90 days, 31 per request
    window = TimeWindow.for_days("2026-01-01", "2026-03-31")
    expected = streamapi.recordings(STREAMAPI_KEY, window.start_ms, window.end_ms - 1)
    before = warehouse.query("SELECT * FROM streamapi.video_recordings ORDER BY ALL")
    assert len(before) == len(expected) > 100
    run(resources, RECORDINGS, partition_key="2026-02-14")
    run(resources, RECORDINGS, tags=range_tags("2026-01-01", "2026-03-31"))
    pd.testing.assert_frame_equal(warehouse.query("SELECT * FROM streamapi.video_recordings ORDER BY ALL"), before)


def test_themes_snapshot_is_replaced_whole(resources, warehouse):
    run(resources, THEMES)
    run(resources, THEMES)
    themes = warehouse.query("SELECT * FROM streamapi.themes ORDER BY id")
    assert themes.name.tolist() == ["Classic", "Widescreen", "Studio HD", "Compact"]


def test_live_sessions_poll_keeps_public_ids_only(streamapi, resources, warehouse, instance):
    instance.add_dynamic_partitions(LIVE_POLLS.name, ["2026-11-25T10:00:00Z"])
    assert run(resources, LIVE, partition_key="2026-11-25T10:00:00Z", instance=instance).success
    rows = warehouse.query("SELECT * FROM streamapi.live_sessions ORDER BY public_hostid")
    assert rows.public_hostid.tolist() == ["1000016000", "1000016002"]
    assert set(rows.poll_time) == {pd.Timestamp("2026-11-25 10:00:00")}
    secrets = {host.private_hostid for host in streamapi.all_hosts().values()}
    dumped = rows.to_csv() + str(instance.get_latest_materialization_event(LIVE).asset_materialization.metadata)
    assert not any(secret in dumped for secret in secrets)
    assert "private_hostid" not in rows.columns and "fme_key" not in rows.columns
    # the same poll re-run replaces its snapshot; another poll adds one
    run(resources, LIVE, partition_key="2026-11-25T10:00:00Z", instance=instance)
    assert len(warehouse.query("SELECT * FROM streamapi.live_sessions")) == 2


def test_sensor_requests_a_run_only_when_the_live_set_changes(streamapi, resources, instance):

    def tick(cursor):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"streamapi": resources["streamapi"]})
        return streamapi_live_sessions_sensor(context)

    first = tick(None)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests) == 1
    assert first.dynamic_partitions_requests[0].partition_keys == [first.run_requests[0].partition_key]
    unchanged = tick(first.cursor)
    assert isinstance(unchanged, dg.SkipReason) and "unchanged (2 sessions)" in unchanged.skip_message
    streamapi.start_broadcast("1000016001", seconds_ago=120)  # past the 60 s list delay
    started = tick(first.cursor)
    assert isinstance(started, dg.SensorResult) and len(started.run_requests) == 1 and started.cursor != first.cursor
    assert isinstance(tick(started.cursor), dg.SkipReason)
    streamapi.end_broadcast("1000016000")
    assert isinstance(tick(started.cursor), dg.SensorResult)


def test_sensor_first_tick_stores_nothing_when_the_last_snapshot_holds_the_same_live_set(streamapi, resources, warehouse, instance):
    instance.add_dynamic_partitions(LIVE_POLLS.name, ["2026-11-25T10:00:00Z"])
    assert run(resources, LIVE, partition_key="2026-11-25T10:00:00Z", instance=instance).success

    def first_tick():
        context = dg.build_sensor_context(instance=instance, cursor=None, resources={"streamapi": resources["streamapi"]})
        return streamapi_live_sessions_sensor(context)

    result = first_tick()
    assert isinstance(result, dg.SensorResult) and not result.run_requests and not result.dynamic_partitions_requests
    assert "as stored by the last snapshot" in result.skip_reason.skip_message
    assert result.cursor  # later ticks compare with the cursor
    assert instance.get_dynamic_partitions(LIVE_POLLS.name) == ["2026-11-25T10:00:00Z"]
    assert len(warehouse.query("SELECT * FROM streamapi.live_sessions")) == 2
    streamapi.start_broadcast("1000016001", seconds_ago=120)
    changed = first_tick()
    assert isinstance(changed, dg.SensorResult) and len(changed.run_requests) == 1


def test_sensor_skips_when_the_api_fails(streamapi, resources):
    streamapi.accounts.clear()  # every key is now unknown: code 200
    context = dg.build_sensor_context(cursor="x", resources={"streamapi": resources["streamapi"]})
    result = streamapi_live_sessions_sensor(context)
    assert isinstance(result, dg.SkipReason) and "Invalid API key" in result.skip_message


@pytest.mark.parametrize("selection", [RECORDINGS, THEMES])
def test_a_failing_call_names_the_partition_and_keeps_old_rows(streamapi, resources, warehouse, selection):
    kwargs = {"partition_key": "2026-03-01"} if selection == RECORDINGS else {}
    run(resources, selection, **kwargs)
    table = selection.path[-1]
    before = warehouse.query(f"SELECT * FROM streamapi.{table} ORDER BY ALL")
    streamapi.fail_next(Reply.text("<response><code>100</code><msg>database down</msg></response>",
                                   content_type="text/xml"))
    result = run(resources, selection, raise_on_error=False, **kwargs)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.cause.message
    assert "code 100" in message and "database down" in message
    if kwargs:
        assert "(partition 2026-03-01)" in message
    pd.testing.assert_frame_equal(warehouse.query(f"SELECT * FROM streamapi.{table} ORDER BY ALL"), before)


def test_a_duration_or_size_in_an_unexpected_format_is_stored_as_null_and_counted(streamapi, resources, warehouse):
    window = TimeWindow.for_days("2026-03-01")
    expected = streamapi.recordings(STREAMAPI_KEY, window.start_ms, window.end_ms - 1)
    assert len(expected) >= 2
    videos = "".join(
        f"<video><id>{v['id']}</id><public_hostid>{v['public_hostid']}</public_hostid>"
        f"<creation_date>{v['creation_date']}</creation_date>"
        f"<duration>{'1h 2m' if n == 0 else v['duration']}</duration><size>{'12 MB' if n < 2 else v['size']}</size></video>"
        for n, v in enumerate(expected))
    streamapi.fail_next(Reply.text(f"<response><code>0</code><msg>OK</msg><videos>{videos}</videos></response>",
                                   content_type="text/xml"), path_contains="video/list")
    result = run(resources, RECORDINGS, partition_key="2026-03-01")
    rows = warehouse.query("SELECT id, duration, size FROM streamapi.video_recordings ORDER BY creation_date")
    assert rows.duration.isna().tolist() == [True] + [False] * (len(expected) - 1)
    assert rows["size"].isna().tolist()[:2] == [True, True]
    metadata = result.asset_materializations_for_node("streamapi__video_recordings")[0].metadata
    assert metadata["fields_not_understood"].value == {"duration": 1, "size": 2}
