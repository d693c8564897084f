"""The ten endpoint assets (one factory over the endpoint table) and the derived daily KPI asset."""

from typing import Callable

import dagster as dg
import pandas as pd

from stream_assets.core.assets import (
    PREVIEW_ROWS,
    api_errors,
    daily_partitions,
    partition_window,
    ranged_backfill_policy,
    table_metadata,
)
from stream_assets.core.staging import Staging, Written
from stream_assets.core.warehouse import Table, Warehouse, create_or_extend, write_replacing
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.client import StreamrootClient
from stream_assets.streamroot.columns import fetch_timeseries_tables
from stream_assets.streamroot.endpoints import ENDPOINTS, SCHEMA, Endpoint
from stream_assets.streamroot.resources import StreamrootResource

GROUP = "streamroot"
POINTS_PER_DAY = 288  # 5-minute grain
PARTITIONS = daily_partitions()


def _complete_days_check(frame: pd.DataFrame, window: TimeWindow, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    """Every day of the window that has closed must hold all 288 five-minute points per Streamroot key."""
    now = pd.Timestamp.now(tz="UTC")
    closed = [day.first_day for day in window.days() if pd.Timestamp(day.end) <= now]
    counts = frame.assign(day=frame.ts.dt.date).groupby(["sr_key", "day"]).ts.nunique() if len(frame) else pd.Series()
    keys = sorted(frame.sr_key.unique()) if len(frame) else []
    short = {
        f"{key} {day}": int(counts.get((key, day), 0))
        for key in keys
        for day in closed
        if counts.get((key, day), 0) != POINTS_PER_DAY
    }
    if not keys and closed:
        short = {"(no Streamroot key)": 0}
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="complete_days",
        passed=not short,
        metadata={"closed_days_checked": len(closed), "incomplete_days": dg.MetadataValue.json(dict(list(short.items())[:20]))},
    )


def replace_timeseries(client: StreamrootClient, warehouse: Warehouse, endpoint: Endpoint, window: TimeWindow, *,
                       progress: Callable[[str], None] | None = None, content_type: str | None = None) -> Written:
    """Replace the window's rows of a timeseries endpoint: each 31-day answer is parsed into Arrow columns
    and staged as it arrives (core/staging.py), then swapped into the warehouse in one transaction. A
    failure (or a kill) before the swap leaves the old rows; memory is bounded by one answer."""
    table = endpoint.table
    with Staging(table, api=client.api_name, endpoint=endpoint.path, window=window) as staging:
        for page in fetch_timeseries_tables(client, endpoint, window, progress=progress, content_type=content_type):
            staging.append(page)
        rows = warehouse.replace_staged(table, staging, window)
        return staging.written(rows, ["sr_key", table.window_column], PREVIEW_ROWS)


def build_endpoint_asset(endpoint: Endpoint) -> dg.AssetsDefinition:
    key = dg.AssetKey([SCHEMA, endpoint.name])
    checks = [
        dg.AssetCheckSpec("complete_days", asset=key, description="Each closed day has all 288 five-minute points.")
    ] if endpoint.is_timeseries else []

    @dg.asset(
        key=key,
        group_name=GROUP,
        description=f"{endpoint.description} Source: POST /v3/customers/{{customer}}/{endpoint.path}.",
        partitions_def=PARTITIONS,
        backfill_policy=ranged_backfill_policy(),
        check_specs=checks,
        kinds={"duckdb", "python"},
        metadata={"table": f"{SCHEMA}.{endpoint.name}", "dagster/column_schema": _column_schema(endpoint.table)},
    )
    def endpoint_asset(
        context: dg.AssetExecutionContext, streamroot: StreamrootResource, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        window = partition_window(context)
        client = streamroot.client()
        with api_errors(context):
            if endpoint.is_timeseries:
                written = replace_timeseries(client, warehouse, endpoint, window, progress=context.log.info,
                                             content_type=streamroot.content_type)
                frame = written.preview
            else:
                frame = client.fetch_frame(endpoint, window, progress=context.log.info,
                                           content_type=streamroot.content_type)
                written = Written(warehouse.replace(endpoint.table, frame, window), frame, frame)
        context.log.info(f"{SCHEMA}.{endpoint.name}: replaced window {window} with {written.rows} rows "
                         f"({client.requests_made} requests)")
        return dg.MaterializeResult(
            metadata=table_metadata(frame, window, table=endpoint.table, rows=written.rows,
                                    window_values=written.columns[endpoint.table.window_column],
                                    requests=client.requests_made, http_seconds=round(client.http_seconds, 3)),
            check_results=[_complete_days_check(written.columns, window, key)] if endpoint.is_timeseries else None,
        )

    endpoint_asset.__name__ = f"streamroot_{endpoint.name}"
    return endpoint_asset


def _column_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, kind.lower()) for name, kind in table.columns])


endpoint_assets = [build_endpoint_asset(endpoint) for endpoint in ENDPOINTS]

KPI_TABLE = Table(
    SCHEMA,
    "daily_kpis",
    (("sr_key", "VARCHAR"), ("day", "DATE"), ("buffering_rate", "DOUBLE"), ("p2p_offload", "DOUBLE"),
     ("peak_audience", "DOUBLE"), ("audience_95th", "DOUBLE")),
    "day",
    key=("sr_key", "day"),
)
KPI_SQL = """
SELECT a.sr_key, a.day,
       b.buffered / NULLIF(b.played + b.buffered, 0) AS buffering_rate,
       t.p2p / NULLIF(t.p2p + t.cdn, 0)              AS p2p_offload,
       a.max                                         AS peak_audience,
       a.audience_95th
FROM streamroot.audience a
JOIN streamroot.buffering b USING (sr_key, day)
JOIN streamroot.traffic t USING (sr_key, day)
WHERE a.day >= ? AND a.day < ?
ORDER BY a.sr_key, a.day
"""
# Daily aggregates against the same day's timeseries: sums for traffic and buffering, peak for audience.
CONSISTENCY_SQL = """
WITH series AS (
    SELECT t.sr_key, CAST(t.ts AS DATE) AS day, SUM(t.cdn) AS cdn, SUM(t.p2p) AS p2p,
           SUM(b.played) AS played, SUM(b.buffered) AS buffered, MAX(a.audience) AS peak
    FROM streamroot.traffic_timeseries t
    JOIN streamroot.buffering_timeseries b USING (sr_key, ts)
    JOIN streamroot.audience_timeseries a USING (sr_key, ts)
    WHERE t.ts >= ? AND t.ts < ?
    GROUP BY ALL
)
SELECT k.sr_key, CAST(k.day AS VARCHAR) AS day
FROM streamroot.traffic k
JOIN streamroot.buffering b USING (sr_key, day)
JOIN streamroot.audience a USING (sr_key, day)
LEFT JOIN series s USING (sr_key, day)
WHERE k.day >= ? AND k.day < ?
  AND (abs(k.cdn - coalesce(s.cdn, 0)) > 1e-6 * greatest(abs(k.cdn), 1)
    OR abs(k.p2p - coalesce(s.p2p, 0)) > 1e-6 * greatest(abs(k.p2p), 1)
    OR abs(b.played - coalesce(s.played, 0)) > 1e-6 * greatest(abs(b.played), 1)
    OR abs(b.buffered - coalesce(s.buffered, 0)) > 1e-6 * greatest(abs(b.buffered), 1)
    OR a.max <> coalesce(s.peak, 0))
ORDER BY 1, 2
"""
KPI_INPUTS = ["audience", "buffering", "traffic", "audience_timeseries", "buffering_timeseries", "traffic_timeseries"]


@dg.asset(
    key=dg.AssetKey([SCHEMA, "daily_kpis"]),
    group_name=GROUP,
    description="Daily KPIs per Streamroot key: buffering rate = buffered / (played + buffered), "
    "P2P offload = p2p / (p2p + cdn), peak and 95th-percentile audience. Computed in DuckDB.",
    partitions_def=PARTITIONS,
    backfill_policy=ranged_backfill_policy(),
    deps=[dg.AssetKey([SCHEMA, name]) for name in KPI_INPUTS],
    kinds={"duckdb", "sql"},
    check_specs=[
        dg.AssetCheckSpec("rates_within_unit_interval", asset=dg.AssetKey([SCHEMA, "daily_kpis"]),
                          description="Buffering rate and P2P offload lie in [0, 1]."),
        dg.AssetCheckSpec("aggregates_match_timeseries", asset=dg.AssetKey([SCHEMA, "daily_kpis"]),
                          description="Daily traffic/buffering sums and peak audience equal their timeseries."),
    ],
    metadata={"table": f"{SCHEMA}.daily_kpis", "dagster/column_schema": _column_schema(KPI_TABLE)},
)
def streamroot_daily_kpis(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    window = partition_window(context)
    first, end = window.first_day, window.last_day + pd.Timedelta(days=1)
    naive_start, naive_end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    with warehouse.get_connection() as conn:
        for name in KPI_INPUTS:  # an input never materialized yet reads as empty, not as an error
            create_or_extend(conn, next(e.table for e in ENDPOINTS if e.name == name))
        frame = conn.execute(KPI_SQL, [first, end]).df()
        write_replacing(conn, KPI_TABLE, frame, window)
        mismatches = conn.execute(CONSISTENCY_SQL, [naive_start, naive_end, first, end]).df()
    rates = frame[["buffering_rate", "p2p_offload"]]
    out_of_range = int(((rates < 0) | (rates > 1)).sum().sum())
    return dg.MaterializeResult(
        metadata=table_metadata(frame, window, table=KPI_TABLE),
        check_results=[
            dg.AssetCheckResult(check_name="rates_within_unit_interval", passed=out_of_range == 0,
                                metadata={"values_out_of_range": out_of_range}),
            dg.AssetCheckResult(check_name="aggregates_match_timeseries", passed=mismatches.empty,
                                metadata={"mismatched_days": dg.MetadataValue.json(mismatches.head(20).to_dict("records"))}),
        ],
    )


assets = [*endpoint_assets, streamroot_daily_kpis]
