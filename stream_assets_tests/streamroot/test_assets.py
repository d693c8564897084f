"""Streamroot assets materialized in-process against the emulator, checked row by row."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.assets import assets
from stream_assets.streamroot.endpoints import ENDPOINTS
from stream_assets.streamroot.schedules import streamroot_hourly
from stream_assets_tests.conftest import STREAMROOT_CUSTOMER

TIMESERIES = [e for e in ENDPOINTS if e.is_timeseries]
AGGREGATES = [e for e in ENDPOINTS if not e.is_timeseries]


def materialize(resources, first: str, last: str | None = None, selection=None, raise_on_error=True):
    tags = {}
    if last and last != first:
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(
        assets, resources=resources, selection=selection, tags=tags,
        partition_key=None if tags else first, raise_on_error=raise_on_error,
    )


def expected_timeseries(emulator, window: TimeWindow) -> pd.DataFrame:
    data = emulator.five_minute_data(STREAMROOT_CUSTOMER, window.start_ms, window.end_ms)
    return data.assign(ts=pd.to_datetime(data.ts_ms, unit="ms"))


def test_one_partition_of_every_asset_matches_the_emulator(streamroot, resources, warehouse):
    result = materialize(resources, "2026-03-01")
    assert result.success
    window = TimeWindow.for_days("2026-03-01")
    expected = expected_timeseries(streamroot, window)
    sr_key = streamroot.sr_key(STREAMROOT_CUSTOMER)
    for endpoint in TIMESERIES:
        rows = warehouse.query(f"SELECT * FROM streamroot.{endpoint.name} ORDER BY ts")
        assert list(rows.columns) == endpoint.table.column_names
        assert len(rows) == 288 and set(rows.sr_key) == {sr_key}
        assert rows.ts.tolist() == expected.ts.tolist()
    series = warehouse.query("SELECT * FROM streamroot.traffic_timeseries ORDER BY ts")
    assert series.cdn.tolist() == expected.cdn.tolist() and series.p2p.tolist() == expected.p2p.tolist()
    bandwidth = warehouse.query("SELECT * FROM streamroot.bandwidth_timeseries ORDER BY ts")
    assert bandwidth.p2p.tolist() == pytest.approx((expected.p2p * 8 / 300).tolist())
    audience = warehouse.query("SELECT * FROM streamroot.audience")
    assert audience.to_dict("records") == [{
        "sr_key": sr_key, "day": pd.Timestamp("2026-03-01"), "max": expected.audience.max(),
        "average": pytest.approx(expected.audience.mean(), abs=1e-3), "audience_95th": audience.audience_95th.item(),
    }]
    assert warehouse.query("SELECT cdn, p2p FROM streamroot.traffic").iloc[0].tolist() == [expected.cdn.sum(), expected.p2p.sum()]
    assert len(warehouse.query("SELECT * FROM streamroot.platforms")) >= 1
    assert set(warehouse.query("SELECT stream FROM streamroot.streams").stream) <= {
        "live/majorChannel.m3u8", "live/sportsLive.m3u8", "vod/mainContent/myVODstream.m3u8", "vod/catalogue/archive.m3u8"}
    assert len(streamroot.requests) == len(ENDPOINTS)  # one request per endpoint for one day


def test_daily_kpis_and_every_check_pass(streamroot, resources, warehouse):
    result = materialize(resources, "2026-03-01", "2026-03-02")
    assert {(e.check_name, e.passed) for e in result.get_asset_check_evaluations()} == {
        ("complete_days", True), ("rates_within_unit_interval", True), ("aggregates_match_timeseries", True)}
    kpis = warehouse.query("SELECT * FROM streamroot.daily_kpis ORDER BY day")
    buffering = warehouse.query("SELECT * FROM streamroot.buffering ORDER BY day")
    traffic = warehouse.query("SELECT * FROM streamroot.traffic ORDER BY day")
    assert kpis.buffering_rate.tolist() == pytest.approx((buffering.buffered / (buffering.played + buffering.buffered)).tolist())
    assert kpis.p2p_offload.tolist() == pytest.approx((traffic.p2p / (traffic.p2p + traffic.cdn)).tolist())
    assert kpis.peak_audience.tolist() == warehouse.query("SELECT max FROM streamroot.audience ORDER BY day")["max"].tolist()


def test_a_range_is_one_run_with_one_request_per_timeseries_endpoint(streamroot, resources, warehouse):
    result = materialize(resources, "2026-02-01", "2026-02-10")
    assert result.success
    for endpoint in TIMESERIES:
        assert len(streamroot.requests_to(endpoint.path)) == 1
        assert warehouse.query(f"SELECT count(*) AS n FROM streamroot.{endpoint.name}").n.item() == 10 * 288
    for endpoint in AGGREGATES:  # the API aggregates over the whole window, so aggregates go day by day
        assert len([r for r in streamroot.requests if r.path.endswith(endpoint.path)]) == 10
    days = warehouse.query("SELECT day FROM streamroot.traffic ORDER BY day").day.dt.date.tolist()
    assert days == [dt.date(2026, 2, d) for d in range(1, 11)]
    materialization = result.asset_materializations_for_node("streamroot__traffic_timeseries")[0]
    assert materialization.metadata["requests_in_run"].value == 1
    assert materialization.metadata["rows_in_run"].value == 10 * 288
    assert materialization.metadata["dagster/row_count"].value == 288  # each day its own count


def test_rematerializing_leaves_identical_rows(resources, warehouse):
    materialize(resources, "2026-03-01", "2026-03-03")
    tables = [e.name for e in ENDPOINTS] + ["daily_kpis"]
    before = {t: warehouse.query(f"SELECT * FROM streamroot.{t} ORDER BY ALL") for t in tables}
    materialize(resources, "2026-03-02")
    materialize(resources, "2026-03-01", "2026-03-03")
    for table in tables:
        pd.testing.assert_frame_equal(warehouse.query(f"SELECT * FROM streamroot.{table} ORDER BY ALL"), before[table])


def test_a_failing_request_leaves_the_previous_partition_intact(streamroot, resources, warehouse):
    materialize(resources, "2026-03-01")
    before = warehouse.query("SELECT * FROM streamroot.traffic_timeseries ORDER BY ts")
    streamroot.fail_next(Reply.text("<html>Gateway timeout</html>", content_type="text/html"),
                         path_contains="traffic/timeseries")
    selection = [dg.AssetKey(["streamroot", "traffic_timeseries"])]
    result = materialize(resources, "2026-03-01", selection=selection, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.cause.message
    assert "Streamroot dna/data/traffic/timeseries (partition 2026-03-01): malformed response" in message
    pd.testing.assert_frame_equal(warehouse.query("SELECT * FROM streamroot.traffic_timeseries ORDER BY ts"), before)


def test_secrets_stay_out_of_errors_and_events(streamroot, resources):
    streamroot.fail_next(Reply.json({"message": "invalid API key"}, status=401))
    result = materialize(resources, "2026-03-01", selection=[dg.AssetKey(["streamroot", "audience"])],
                         raise_on_error=False)
    assert not result.success
    key = resources["streamroot"].api_key
    assert all(key not in str(event) for event in result.all_events)


def test_today_partition_holds_only_closed_intervals_and_skips_the_completeness_check(streamroot, resources, warehouse):
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    result = materialize(resources, today, selection=[dg.AssetKey(["streamroot", "audience_timeseries"])])
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["closed_days_checked"].value == 0
    latest = warehouse.query("SELECT max(ts) AS ts FROM streamroot.audience_timeseries").ts.item()
    assert latest is pd.NaT or latest <= pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(minutes=5)


def test_completeness_check_fails_when_points_are_missing(streamroot, resources):
    day = TimeWindow.for_days("2026-03-01")
    points = [[day.start_ms + 300_000 * i, 1.0] for i in range(200)]
    streamroot.fail_next(Reply.json([{"srKey": "k", "audience": points}]), path_contains="audience/timeseries")
    result = materialize(resources, "2026-03-01", selection=[dg.AssetKey(["streamroot", "audience_timeseries"])])
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["incomplete_days"].value == {"k 2026-03-01": 200}


def test_schedule_refreshes_today_hourly_and_finalizes_yesterday_after_midnight():
    def run_requests(hour: int):
        moment = dt.datetime(2026, 11, 25, hour, 10, tzinfo=dt.timezone.utc)
        context = dg.build_schedule_context(scheduled_execution_time=moment)
        return [(r.partition_key, r.run_key) for r in streamroot_hourly(context)]

    assert run_requests(0) == [("2026-11-25", "2026-11-25@00"), ("2026-11-24", "2026-11-24@final")]
    assert run_requests(13) == [("2026-11-25", "2026-11-25@13")]
