"""The ten endpoint assets (one factory over the endpoint table) and the derived daily KPI asset.

:func:`build_assets` builds them for one account (a :class:`~stream_assets.core.tenants.Tenant`): the default
instance keeps the names ``streamroot/<table>``, group and schema ``streamroot``; tenant ``acme`` gets
``streamroot_acme/<table>`` in schema and group ``streamroot_acme``, and reads its resource under the key
``streamroot_acme``. The module-level objects (``assets``, ``PARTITIONS``, ...) are the default instance's.
"""

from pathlib import Path
from typing import Callable

import dagster as dg
import pandas as pd

from stream_assets.core import config
from stream_assets.core.assets import (
    DAILY_FRESHNESS,
    PREVIEW_ROWS,
    api_errors,
    api_resource,
    daily_partitions,
    partition_window,
    ranged_backfill_policy,
    table_definition,
    table_metadata,
)
from stream_assets.core.staging import Staging, Written
from stream_assets.core.tenants import Tenant
from stream_assets.core.warehouse import Table, Warehouse, create_or_extend, write_replacing
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.client import StreamrootClient
from stream_assets.streamroot.columns import fetch_timeseries_tables
from stream_assets.streamroot.descriptions import COLUMN_DESCRIPTIONS
from stream_assets.streamroot.endpoints import BY_NAME, ENDPOINTS, SCHEMA, Endpoint
from stream_assets.streamroot.resources import StreamrootResource

DEFAULT_TENANT = Tenant(SCHEMA)
# Closed days the refresh sensor fetches again, per asset: CDN and peer statistics settle within hours (late
# session reports), so three days cover them; the KPIs are recomputed from the same days.
REFRESH_LOOKBACK_DAYS = {**{endpoint.name: 3 for endpoint in ENDPOINTS}, "daily_kpis": 3}
GROUP = DEFAULT_TENANT.group
POINTS_PER_DAY = 288  # 5-minute grain


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
                       progress: Callable[[str], None] | None = None, content_type: str | None = None,
                       table: Table | None = None, directory: Path | None = None) -> Written:
    """Replace the window's rows of a timeseries endpoint: each 31-day answer is parsed into Arrow columns
    and staged as it arrives (core/staging.py, in ``directory``), then swapped into the warehouse in one
    transaction. A failure (or a kill) before the swap leaves the old rows; memory is bounded by one answer.
    ``table`` is the endpoint's table in the instance's schema (default: the default instance's)."""
    table = table or endpoint.table
    with Staging(table, api=client.api_name, endpoint=endpoint.path, window=window, directory=directory) as staging:
        for page in fetch_timeseries_tables(client, endpoint, window, progress=progress, content_type=content_type):
            staging.append(page)
        rows = warehouse.replace_staged(table, staging, window)
        return staging.written(rows, ["sr_key", table.window_column], PREVIEW_ROWS)


def _table_metadata(table: Table) -> dict:
    """The standard table metadata (``dagster/table_name``, ``dagster/column_schema``) plus ``table``."""
    return {**table_definition(table, COLUMN_DESCRIPTIONS.get(table.name)), "table": f"{table.schema}.{table.name}"}


def build_endpoint_asset(endpoint: Endpoint, tenant: Tenant = DEFAULT_TENANT, *,
                         partitions: dg.PartitionsDefinition | None = None) -> dg.AssetsDefinition:
    """One endpoint's asset for ``tenant``'s instance (partitions: daily from the code location's start date
    when not given)."""
    key = dg.AssetKey([tenant.prefix, endpoint.name])
    table = endpoint.table.in_schema(tenant.schema)
    checks = [
        dg.AssetCheckSpec("complete_days", asset=key, description="Each closed day has all 288 five-minute points.")
    ] if endpoint.is_timeseries else []

    @dg.asset(
        key=key,
        group_name=tenant.group,
        description=f"{endpoint.description} Source: POST /v3/customers/{{customer}}/{endpoint.path}.",
        partitions_def=partitions or daily_partitions(), freshness_policy=DAILY_FRESHNESS,
        backfill_policy=ranged_backfill_policy(),
        check_specs=checks,
        kinds={"duckdb", "python"},
        metadata=_table_metadata(table),
        required_resource_keys={tenant.resource_key, "warehouse"},
    )
    def endpoint_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        streamroot: StreamrootResource = api_resource(context, tenant)
        warehouse: Warehouse = context.resources.warehouse
        window = partition_window(context)
        with api_errors(context):
            client = streamroot.client()
            content_type = streamroot.content_filter()
            if endpoint.is_timeseries:
                written = replace_timeseries(client, warehouse, endpoint, window, progress=context.log.info,
                                             content_type=content_type, table=table,
                                             directory=streamroot.staging_directory())
                frame = written.preview
            else:
                frame = client.fetch_frame(endpoint, window, progress=context.log.info, content_type=content_type)
                written = Written(warehouse.replace(table, frame, window), frame, frame)
        context.log.info(f"{table.schema}.{table.name}: replaced window {window} with {written.rows} rows "
                         f"({client.requests_made} requests)")
        return dg.MaterializeResult(
            metadata=table_metadata(frame, window, table=table, rows=written.rows,
                                    window_values=written.columns[table.window_column],
                                    requests=client.requests_made, http_seconds=round(client.http_seconds, 3)),
            check_results=[_complete_days_check(written.columns, window, key)] if endpoint.is_timeseries else None,
        )

    endpoint_asset.__name__ = f"{tenant.prefix}_{endpoint.name}"
    return endpoint_asset


KPI_TABLE = Table(
    SCHEMA,
    "daily_kpis",
    (("sr_key", "VARCHAR"), ("day", "DATE"), ("buffering_rate", "DOUBLE"), ("p2p_offload", "DOUBLE"),
     ("peak_audience", "DOUBLE"), ("audience_95th", "DOUBLE")),
    "day",
    key=("sr_key", "day"),
)
# {schema} is the instance's schema (a tenant name is checked to be an identifier: core/tenants.py).
KPI_SQL = """
SELECT a.sr_key, a.day,
       b.buffered / NULLIF(b.played + b.buffered, 0) AS buffering_rate,
       t.p2p / NULLIF(t.p2p + t.cdn, 0)              AS p2p_offload,
       a.max                                         AS peak_audience,
       a.audience_95th
FROM "{schema}".audience a
JOIN "{schema}".buffering b USING (sr_key, day)
JOIN "{schema}".traffic t USING (sr_key, day)
WHERE a.day >= ? AND a.day < ?
ORDER BY a.sr_key, a.day
"""
# Daily aggregates against the same day's timeseries: sums for traffic and buffering, peak for audience.
CONSISTENCY_SQL = """
WITH series AS (
    SELECT t.sr_key, CAST(t.ts AS DATE) AS day, SUM(t.cdn) AS cdn, SUM(t.p2p) AS p2p,
           SUM(b.played) AS played, SUM(b.buffered) AS buffered, MAX(a.audience) AS peak
    FROM "{schema}".traffic_timeseries t
    JOIN "{schema}".buffering_timeseries b USING (sr_key, ts)
    JOIN "{schema}".audience_timeseries a USING (sr_key, ts)
    WHERE t.ts >= ? AND t.ts < ?
    GROUP BY ALL
)
SELECT k.sr_key, CAST(k.day AS VARCHAR) AS day
FROM "{schema}".traffic k
JOIN "{schema}".buffering b USING (sr_key, day)
JOIN "{schema}".audience a USING (sr_key, day)
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


def build_kpi_asset(tenant: Tenant = DEFAULT_TENANT, *,
                    partitions: dg.PartitionsDefinition | None = None) -> dg.AssetsDefinition:
    """The daily KPI asset of ``tenant``'s instance, computed in DuckDB from the instance's own schema."""
    key = dg.AssetKey([tenant.prefix, "daily_kpis"])
    schema = tenant.schema
    table = KPI_TABLE.in_schema(schema)
    inputs = [BY_NAME[name].table.in_schema(schema) for name in KPI_INPUTS]
    kpi_sql, consistency_sql = KPI_SQL.format(schema=schema), CONSISTENCY_SQL.format(schema=schema)

    @dg.asset(
        key=key,
        group_name=tenant.group,
        description="Daily KPIs per Streamroot key: buffering rate = buffered / (played + buffered), "
        "P2P offload = p2p / (p2p + cdn), peak and 95th-percentile audience. Computed in DuckDB.",
        partitions_def=partitions or daily_partitions(), freshness_policy=DAILY_FRESHNESS,
        backfill_policy=ranged_backfill_policy(),
        deps=[dg.AssetKey([tenant.prefix, name]) for name in KPI_INPUTS],
        kinds={"duckdb", "sql"},
        check_specs=[
            dg.AssetCheckSpec("rates_within_unit_interval", asset=key,
                              description="Buffering rate and P2P offload lie in [0, 1]."),
            dg.AssetCheckSpec("aggregates_match_timeseries", asset=key,
                              description="Daily traffic/buffering sums and peak audience equal their timeseries."),
        ],
        metadata=_table_metadata(table),
        required_resource_keys={"warehouse"},
    )
    def daily_kpis(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse: Warehouse = context.resources.warehouse
        window = partition_window(context)
        first, end = window.first_day, window.last_day + pd.Timedelta(days=1)
        naive_start, naive_end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
        with warehouse.get_connection() as conn:
            for source in inputs:  # an input never materialized yet reads as empty, not as an error
                create_or_extend(conn, source)
            frame = conn.execute(kpi_sql, [first, end]).df()
            write_replacing(conn, table, frame, window)
            mismatches = conn.execute(consistency_sql, [naive_start, naive_end, first, end]).df()
        rates = frame[["buffering_rate", "p2p_offload"]]
        out_of_range = int(((rates < 0) | (rates > 1)).sum().sum())
        return dg.MaterializeResult(
            metadata=table_metadata(frame, window, table=table),
            check_results=[
                dg.AssetCheckResult(check_name="rates_within_unit_interval", passed=out_of_range == 0,
                                    metadata={"values_out_of_range": out_of_range}),
                dg.AssetCheckResult(check_name="aggregates_match_timeseries", passed=mismatches.empty,
                                    metadata={"mismatched_days": dg.MetadataValue.json(
                                        mismatches.head(20).to_dict("records"))}),
            ],
        )

    daily_kpis.__name__ = f"{tenant.prefix}_daily_kpis"
    return daily_kpis


def build_assets(tenant: Tenant = DEFAULT_TENANT, start_date: str | None = None) -> list[dg.AssetsDefinition]:
    """Every Streamroot asset of ``tenant``'s instance: the ten endpoints, then the daily KPIs. Daily partitions
    start at ``start_date`` (YYYY-MM-DD; None: the code location's ``STREAM_ASSETS_START_DATE``)."""
    if start_date is not None:
        config.iso_date(f"{tenant.label()} start_date", start_date)
    partitions = daily_partitions(start_date)
    return [*(build_endpoint_asset(endpoint, tenant, partitions=partitions) for endpoint in ENDPOINTS),
            build_kpi_asset(tenant, partitions=partitions)]


# The default instance: today's names, imported by the code location and the tests.
assets = build_assets(DEFAULT_TENANT)
endpoint_assets = assets[:-1]
streamroot_daily_kpis = assets[-1]
PARTITIONS = streamroot_daily_kpis.partitions_def
