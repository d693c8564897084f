"""Materialization metadata: honest per-partition numbers in ranged runs, bounded previews."""

import dagster as dg
import pandas as pd

from stream_assets.core.assets import (
    PREVIEW_CELL_CHARS,
    PREVIEW_ROWS,
    daily_partitions,
    partition_window,
    preview,
    ranged_backfill_policy,
    table_metadata,
)
from stream_assets.streamroot.assets import assets

TRAFFIC_TIMESERIES = dg.AssetKey(["streamroot", "traffic_timeseries"])
RANGE_TAGS = {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-07"}


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dict]:
    records = instance.fetch_materializations(key, limit=100).records
    return {r.asset_materialization.partition: r.asset_materialization.metadata for r in records}


def test_a_seven_day_ranged_run_reports_288_rows_for_each_day(resources):
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(assets, resources=resources, selection=[TRAFFIC_TIMESERIES], tags=RANGE_TAGS,
                                instance=instance)
        assert result.success
        by_day = materializations(instance, TRAFFIC_TIMESERIES)
    assert sorted(by_day) == [f"2026-03-0{d}" for d in range(1, 8)]
    for day, metadata in by_day.items():
        assert metadata["dagster/row_count"].value == 288, day
        assert metadata["window"].value == day
        assert metadata["rows_in_run"].value == 7 * 288
        assert metadata["partitions_in_run"].value == 7
        assert metadata["requests_in_run"].value == 1  # one timeseries request for the whole range
        assert "requests" not in metadata and "http_seconds" not in metadata
        assert "http_seconds_in_run" in metadata


def test_a_single_partition_run_keeps_the_plain_names(resources):
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(assets, resources=resources, selection=[TRAFFIC_TIMESERIES], partition_key="2026-03-02",
                       instance=instance)
        (metadata,) = materializations(instance, TRAFFIC_TIMESERIES).values()
    assert metadata["dagster/row_count"].value == 288
    assert metadata["requests"].value == 1
    assert "rows_in_run" not in metadata and "requests_in_run" not in metadata


def test_the_preview_is_bounded_in_rows_and_cell_width():
    frame = pd.DataFrame({"id": range(50), "text": ["x" * 5000 + "|\nend"] * 50})
    text = preview(frame).value
    lines = text.splitlines()
    table_rows = [line for line in lines if line.startswith("|")]
    assert len(table_rows) == 2 + PREVIEW_ROWS  # header, separator, rows
    assert max(len(line) for line in table_rows) < 3 * PREVIEW_CELL_CHARS
    assert f"first {PREVIEW_ROWS} of 50 rows" in text
    assert len(text) < 2000


def test_without_a_table_the_day_column_is_found_or_the_row_count_left_out():
    """Callers that pass no table (Streamtime) still get per-day counts when one date column places the rows."""
    days = pd.to_datetime(["2026-03-01", "2026-03-01", "2026-03-03"]).date

    def build(frame: pd.DataFrame) -> dg.AssetsDefinition:
        @dg.asset(partitions_def=daily_partitions(), backfill_policy=ranged_backfill_policy())
        def records(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata=table_metadata(frame, partition_window(context)))
        return records

    tags = {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-03"}
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize([build(pd.DataFrame({"id": [1, 2, 3], "date": days}))], tags=tags, instance=instance)
        counted = materializations(instance, dg.AssetKey("records"))
    assert {day: m["dagster/row_count"].value for day, m in counted.items()} == {
        "2026-03-01": 2, "2026-03-02": 0, "2026-03-03": 1}

    two_date_columns = pd.DataFrame({"id": [1, 2, 3], "date": days, "approved": days})
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize([build(two_date_columns)], tags=tags, instance=instance)
        ambiguous = materializations(instance, dg.AssetKey("records"))
    assert len(ambiguous) == 3
    assert all("dagster/row_count" not in m and m["rows_in_run"].value == 3 for m in ambiguous.values())
