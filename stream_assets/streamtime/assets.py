"""Streamtime assets: one per entity (daily partitions on its natural date, or a snapshot), plus daily
statistics from one time_series request. All of them run in the Dagster pool ``streamtime``."""

import dagster as dg
import pandas as pd

from stream_assets.core.assets import api_errors, daily_partitions, partition_window, ranged_backfill_policy, table_metadata
from stream_assets.core.warehouse import Table, Warehouse
from stream_assets.streamtime.client import Series, StreamtimeClient
from stream_assets.streamtime.entities import ENTITIES, SCHEMA, Entity
from stream_assets.streamtime.resources import StreamtimeResource

GROUP = POOL = "streamtime"
PARTITIONS = daily_partitions()
# (column, search view, field, aggregation) of the daily statistics: all of them in one time_series request.
STATISTICS = (
    ("logged_minutes", 8, "minutes", "sum"),
    ("logged_time_entries", 8, "id", "count"),
    ("invoice_total_ex_tax", 10, "invoiceCurrencyTotalAmountExTax", "sum"),
    ("invoices", 10, "id", "count"),
    ("quote_total_ex_tax", 11, "totalExTax", "sum"),
)
STATISTICS_TABLE = Table(SCHEMA, "daily_statistics", (("day", "DATE"), *((c, "DOUBLE") for c, *_ in STATISTICS)), "day")


def budget_metadata(client: StreamtimeClient) -> dict:
    return {
        "requests": client.requests_made,
        "seconds_waited_for_budget": round(client.limiter.seconds_waited, 3) if client.limiter else 0.0,
        "budget_left": dg.MetadataValue.json({k: round(v, 2) for k, v in client.limiter.remaining().items()}) if client.limiter else None,
        "throttled_429": client.throttled,
    }


def _waits(context: dg.AssetExecutionContext):
    return lambda seconds, budget: context.log.info(f"waiting ~{seconds:.1f}s for Streamtime budget ({budget})")


def build_entity_asset(entity: Entity) -> dg.AssetsDefinition:
    partitioned = entity.partitioned
    description = (f"Streamtime {entity.name.replace('_', ' ')}"
                   + (f", by UTC day of `{entity.date_field}`" if partitioned else ", a snapshot replaced whole on each run")
                   + (f" (search view {entity.search_view})." if entity.search_view else f" (GET /{entity.list_path}; v2 has no search view).")
                   + (f" Additional data stored: {', '.join(entity.additional)}." if entity.additional else "")
                   + (f" Note: {entity.assumed}." if entity.assumed else ""))

    @dg.asset(
        key=[SCHEMA, entity.name], group_name=GROUP, pool=POOL, description=description, kinds={"duckdb", "python"},
        partitions_def=PARTITIONS if partitioned else None,
        backfill_policy=ranged_backfill_policy() if partitioned else None,
    )
    def entity_asset(context: dg.AssetExecutionContext, streamtime: StreamtimeResource,
                     warehouse: Warehouse) -> dg.MaterializeResult:
        window = partition_window(context) if partitioned else None
        client = streamtime.client(on_wait=_waits(context))
        with api_errors(context):
            frame = pd.DataFrame(client.rows(entity, window), columns=entity.table.column_names)
        warehouse.replace(entity.table, frame, window)
        return dg.MaterializeResult(metadata=table_metadata(frame, window, **budget_metadata(client)))

    entity_asset.__name__ = f"streamtime_{entity.name}"
    return entity_asset


entity_assets = [build_entity_asset(entity) for entity in ENTITIES]


@dg.asset(
    key=[SCHEMA, "daily_statistics"], group_name=GROUP, pool=POOL, partitions_def=PARTITIONS,
    backfill_policy=ranged_backfill_policy(), kinds={"duckdb", "python"},
    description="Logged minutes and entries, invoice and quote totals per day, from a single v2 time_series "
    "statistics request per run (whatever the range).",
)
def streamtime_daily_statistics(context: dg.AssetExecutionContext, streamtime: StreamtimeResource,
                                warehouse: Warehouse) -> dg.MaterializeResult:
    window = partition_window(context)
    client = streamtime.client(on_wait=_waits(context))
    series = [Series(column, view, field, aggregation) for column, view, field, aggregation in STATISTICS]
    with api_errors(context):
        answer = client.time_series(series, window)
    days = sorted({point["date"] for points in answer.values() for point in points})
    frame = pd.DataFrame({"day": pd.to_datetime(days).date})
    for column, _, _, aggregation in STATISTICS:
        values = {p["date"]: p.get(aggregation) for p in answer.get(column, [])}
        frame[column] = [values.get(day) for day in days]
    warehouse.replace(STATISTICS_TABLE, frame, window)
    return dg.MaterializeResult(metadata=table_metadata(frame, window, **budget_metadata(client)))


assets = [*entity_assets, streamtime_daily_statistics]
daily_assets = [a for a in assets if a.partitions_def is not None]
snapshot_assets = [a for a in assets if a.partitions_def is None]
