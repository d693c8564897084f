"""StreamOne assets: items by creation day, live-stream history, and daily snapshots of item views."""

import datetime as dt

import dagster as dg
import pandas as pd

from stream_assets.core.assets import api_errors, daily_partitions, partition_window, ranged_backfill_policy, table_metadata
from stream_assets.core.validation import count_not_understood
from stream_assets.core.warehouse import Table, Warehouse
from stream_assets.streamone.resources import StreamOneResource

GROUP = SCHEMA = "streamone"
PARTITIONS = daily_partitions()

ITEMS = Table(SCHEMA, "items", (
    ("id", "VARCHAR"), ("title", "VARCHAR"), ("type", "VARCHAR"), ("description", "VARCHAR"), ("duration", "DOUBLE"),
    ("datecreated", "TIMESTAMP"), ("dateaired", "TIMESTAMP"), ("views", "BIGINT"), ("account_id", "VARCHAR"),
    ("account_name", "VARCHAR"), ("archived", "BOOLEAN"),
), "datecreated", key=("id",), non_negative=("duration", "views"))
LIVESTREAMS = Table(SCHEMA, "livestreams", (
    ("id", "VARCHAR"), ("title", "VARCHAR"), ("description", "VARCHAR"), ("type", "VARCHAR"), ("account_id", "VARCHAR"),
    ("account_name", "VARCHAR"), ("first_seen", "TIMESTAMP"), ("last_seen", "TIMESTAMP"),
), key=("id", "first_seen"))
ITEM_VIEWS = Table(SCHEMA, "item_views_daily", (("day", "DATE"), ("item_id", "VARCHAR"), ("views", "BIGINT")), "day",
                   key=("day", "item_id"), non_negative=("views",))
ITEMS_KEY = dg.AssetKey([SCHEMA, "items"])


def _items_check(frame: pd.DataFrame, start: dt.datetime, end: dt.datetime) -> dg.AssetCheckResult:
    duration = pd.to_numeric(frame.duration)
    bad_duration = frame[duration.notna() & ~(duration > 0)]  # unreadable ones are counted in fields_not_understood
    created = pd.to_datetime(frame.datecreated, utc=True)
    outside = frame[(created < start) | (created >= end)]
    return dg.AssetCheckResult(
        asset_key=ITEMS_KEY, check_name="positive_duration_and_created_in_partition",
        passed=bad_duration.empty and outside.empty,
        metadata={"non_positive_durations": len(bad_duration), "created_outside_partition": len(outside),
                  "examples": dg.MetadataValue.json(pd.concat([bad_duration, outside]).id.head(10).tolist())},
    )


@dg.asset(
    key=ITEMS_KEY, group_name=GROUP, partitions_def=PARTITIONS, backfill_policy=ranged_backfill_policy(),
    kinds={"duckdb", "python"},
    check_specs=[dg.AssetCheckSpec("positive_duration_and_created_in_partition", asset=ITEMS_KEY,
                                   description="Every item has a positive duration and a creation date inside its partition.")],
    description="Items (videos and audio), archived and live, by UTC creation day. item/view is asked for the window "
    "alone (mindatecreated/maxdatecreated, archived sent empty so that archived items come too), 100 items a "
    "request, so a partition costs one request per 100 of its items, plus one; a ranged run asks its whole range "
    "in one listing. `duration` is in seconds; `archived` is NULL when the answer does not say.",
)
def streamone_items(context: dg.AssetExecutionContext, streamone: StreamOneResource,
                    warehouse: Warehouse) -> dg.MaterializeResult:
    window = partition_window(context)
    client = streamone.client()
    with api_errors(context):
        items = client.items_created_in(window.start, window.end, progress=context.log.info)
        frame = pd.DataFrame([item.row() for item in items], columns=ITEMS.column_names)
        check = _items_check(frame, window.start, window.end)
        warehouse.replace(ITEMS, frame, window)
    not_understood = count_not_understood(items)
    if not_understood:
        context.log.warning(f"item/view: values in an unexpected format stored as NULL: {not_understood}")
    return dg.MaterializeResult(
        metadata=table_metadata(frame, window, table=ITEMS, requests=client.requests_made,
                                fields_not_understood=dg.MetadataValue.json(not_understood)),
        check_results=[check])


@dg.asset(key=[SCHEMA, "livestreams"], group_name=GROUP, kinds={"duckdb", "python"},
          description="Live streams as history: one row per version of a stream, with first_seen/last_seen; "
          "a run that sees nothing new only moves last_seen.")
def streamone_livestreams(context: dg.AssetExecutionContext, streamone: StreamOneResource,
                          warehouse: Warehouse) -> dg.MaterializeResult:
    client = streamone.client()
    with api_errors(context):
        frame = pd.DataFrame([stream.row() for stream in client.livestreams()],
                             columns=[c for c in LIVESTREAMS.column_names if c not in ("first_seen", "last_seen")])
        counts = warehouse.record_history(LIVESTREAMS, frame, ["id"], dt.datetime.now(dt.timezone.utc))
    return dg.MaterializeResult(metadata=table_metadata(frame, None, requests=client.requests_made, **counts))


@dg.asset(
    key=[SCHEMA, "item_views_daily"], group_name=GROUP, partitions_def=PARTITIONS, kinds={"duckdb", "python"},
    description="Views per item per snapshot day. The API only reports each item's current total, so this table is a "
    "time series the API itself does not keep: only today's partition (UTC) can be materialized, by the daily "
    "schedule; past days cannot be backfilled and are refused.",
)
def streamone_item_views_daily(context: dg.AssetExecutionContext, streamone: StreamOneResource,
                               warehouse: Warehouse) -> dg.MaterializeResult:
    window = partition_window(context)
    today = dt.datetime.now(dt.timezone.utc).date()
    if window.first_day != today or window.last_day != today:
        raise dg.Failure(
            description=f"streamone/item_views_daily can only snapshot today ({today}); the API reports current view "
            f"totals only, so partition {context.partition_key if context.has_partition_key else window} cannot be backfilled.",
        )
    client = streamone.client()
    with api_errors(context):
        frame = pd.DataFrame([{"day": today, "item_id": item.id, "views": item.views} for item in client.items()],
                             columns=ITEM_VIEWS.column_names)
        warehouse.replace(ITEM_VIEWS, frame, window)
    return dg.MaterializeResult(metadata=table_metadata(frame, window, table=ITEM_VIEWS, requests=client.requests_made))


assets = [streamone_items, streamone_livestreams, streamone_item_views_daily]
