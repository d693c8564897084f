"""StreamOne assets: items by creation day, live-stream history, and daily snapshots of item views.

:func:`build_assets` makes them for one account (instance, :class:`Tenant`); the module-level objects are the
default instance's, with today's names (asset keys ``streamone/...``, group and schema ``streamone``)."""

import datetime as dt
from typing import Callable

import dagster as dg
import pandas as pd

from stream_assets.core.assets import (
    DAILY_FRESHNESS, api_errors, api_resource, daily_partitions, partition_window, ranged_backfill_policy, table_definition,
    table_metadata,
)
from stream_assets.core.config import iso_date
from stream_assets.core.tenants import Tenant
from stream_assets.core.validation import count_not_understood
from stream_assets.core.warehouse import Table

DEFAULT = Tenant("streamone")
GROUP = SCHEMA = DEFAULT.schema
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
# Closed days the refresh sensor fetches again: items are archived, retitled and re-described for weeks after
# upload. `item_views_daily` is not refreshed: the API only tells today's views.
REFRESH_LOOKBACK_DAYS = {"items": 30}
ITEMS_CHECK = "positive_duration_and_created_in_partition"

# Per table, what each column holds (reference/apis.md §3, the vendor's item/view page; "assumed" where the
# documentation does not say). Shown as the column schema of each asset.
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "items": {
        "id": "Item id (item/view `id`, a 12-character URL-safe string)",
        "title": "Item title (`title`)",
        "type": "Item type (`type`): video, audio or videoonly",
        "description": "Item description (`description`)",
        "duration": "Length in seconds, from `duration` (H:MM:SS as in the vendor's demo app; HH:MM:SS.mmm, "
                    "assumed, is read too); NULL when not understood",
        "datecreated": "Creation time (`datecreated`), UTC; the API writes it in the request's timezone. The "
                       "partition column",
        "dateaired": "Air time (`dateaired`), UTC",
        "views": "Total views of the item (`views`) as of the run",
        "account_id": "Id of the item's account (`account.id`)",
        "account_name": "Name of the item's account (`account.name`)",
        "archived": "Whether the item is archived (`archived`; its encoding in answers, a boolean or 0/1, is "
                    "assumed); NULL when the answer does not say",
    },
    "livestreams": {
        "id": "Live stream id (livestream/view `id`)",
        "title": "Live stream title (`title`)",
        "description": "Live stream description (`description`)",
        "type": "Live stream type (`type.name`)",
        "account_id": "Id of the live stream's account (`account.id`)",
        "account_name": "Name of the live stream's account (`account.name`)",
        "first_seen": "Ours: when a run first saw this version of the stream (UTC)",
        "last_seen": "Ours: when a run last saw this version of the stream (UTC)",
    },
    "item_views_daily": {
        "day": "Ours: the UTC day of the snapshot (the partition column)",
        "item_id": "Item id (item/view `id`)",
        "views": "The item's total views (item/view `views`) when the snapshot was taken",
    },
}


def _items_check(key: dg.AssetKey, frame: pd.DataFrame, start: dt.datetime, end: dt.datetime) -> dg.AssetCheckResult:
    duration = pd.to_numeric(frame.duration)
    bad_duration = frame[duration.notna() & ~(duration > 0)]  # unreadable ones are counted in fields_not_understood
    created = pd.to_datetime(frame.datecreated, utc=True)
    outside = frame[(created < start) | (created >= end)]
    return dg.AssetCheckResult(
        asset_key=key, check_name=ITEMS_CHECK,
        passed=bad_duration.empty and outside.empty,
        metadata={"non_positive_durations": len(bad_duration), "created_outside_partition": len(outside),
                  "examples": dg.MetadataValue.json(pd.concat([bad_duration, outside]).id.head(10).tolist())},
    )


def _named(function: Callable, tenant: Tenant, table: Table) -> Callable:
    """``function`` named after the instance and the table (``streamone_items``, ``streamone_acme_items``)."""
    function.__name__ = function.__qualname__ = f"{tenant.prefix}_{table.name}"
    return function


def _asset_options(tenant: Tenant, table: Table) -> dict:
    return dict(key=[tenant.prefix, table.name], group_name=tenant.group, kinds={"duckdb", "python"},
                required_resource_keys={tenant.resource_key, "warehouse"},
                metadata=table_definition(table, COLUMN_DESCRIPTIONS[table.name]))


def build_items(tenant: Tenant, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    table = ITEMS.in_schema(tenant.schema)
    key = dg.AssetKey([tenant.prefix, table.name])

    def items(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        window = partition_window(context)
        client = api_resource(context, tenant).client()
        with api_errors(context):
            found = client.items_created_in(window.start, window.end, progress=context.log.info)
            frame = pd.DataFrame([item.row() for item in found], columns=table.column_names)
            check = _items_check(key, frame, window.start, window.end)
            context.resources.warehouse.replace(table, frame, window)
        not_understood = count_not_understood(found)
        if not_understood:
            context.log.warning(f"item/view: values in an unexpected format stored as NULL: {not_understood}")
        return dg.MaterializeResult(
            metadata=table_metadata(frame, window, table=table, requests=client.requests_made,
                                    fields_not_understood=dg.MetadataValue.json(not_understood)),
            check_results=[check])

    return dg.asset(
        **_asset_options(tenant, table), partitions_def=partitions, backfill_policy=ranged_backfill_policy(), freshness_policy=DAILY_FRESHNESS,
        check_specs=[dg.AssetCheckSpec(ITEMS_CHECK, asset=key, description="Every item has a positive duration "
                                       "and a creation date inside its partition.")],
        description="Items (videos and audio), archived and live, by UTC creation day. item/view is asked for the "
        "window alone (mindatecreated/maxdatecreated, archived sent empty so that archived items come too), 100 "
        "items a request, so a partition costs one request per 100 of its items, plus one; a ranged run asks its "
        "whole range in one listing. `duration` is in seconds; `archived` is NULL when the answer does not say.",
    )(_named(items, tenant, table))


def build_livestreams(tenant: Tenant) -> dg.AssetsDefinition:
    table = LIVESTREAMS.in_schema(tenant.schema)

    def livestreams(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        client = api_resource(context, tenant).client()
        with api_errors(context):
            frame = pd.DataFrame([stream.row() for stream in client.livestreams()],
                                 columns=[c for c in table.column_names if c not in ("first_seen", "last_seen")])
            counts = context.resources.warehouse.record_history(table, frame, ["id"], dt.datetime.now(dt.timezone.utc))
        return dg.MaterializeResult(metadata=table_metadata(frame, None, requests=client.requests_made, **counts))

    return dg.asset(
        **_asset_options(tenant, table),
        description="Live streams as history: one row per version of a stream, with first_seen/last_seen; "
        "a run that sees nothing new only moves last_seen.",
    )(_named(livestreams, tenant, table))


def build_item_views(tenant: Tenant, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    table = ITEM_VIEWS.in_schema(tenant.schema)
    name = f"{tenant.prefix}/{table.name}"

    def item_views_daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        window = partition_window(context)
        today = dt.datetime.now(dt.timezone.utc).date()
        if window.first_day != today or window.last_day != today:
            raise dg.Failure(
                description=f"{name} can only snapshot today ({today}); the API reports current view totals only, "
                f"so partition {context.partition_key if context.has_partition_key else window} cannot be backfilled.",
            )
        client = api_resource(context, tenant).client()
        with api_errors(context):
            frame = pd.DataFrame([{"day": today, "item_id": item.id, "views": item.views} for item in client.items()],
                                 columns=table.column_names)
            context.resources.warehouse.replace(table, frame, window)
        return dg.MaterializeResult(metadata=table_metadata(frame, window, table=table, requests=client.requests_made))

    return dg.asset(
        **_asset_options(tenant, table), partitions_def=partitions, freshness_policy=DAILY_FRESHNESS,
        description="Views per item per snapshot day. The API only reports each item's current total, so this table "
        "is a time series the API itself does not keep: only today's partition (UTC) can be materialized, by the "
        "daily schedule; past days cannot be backfilled and are refused.",
    )(_named(item_views_daily, tenant, table))


def build_assets(tenant: Tenant = DEFAULT, start_date: str | None = None) -> list[dg.AssetsDefinition]:
    """The StreamOne assets of one instance: items, live streams, item views (in that order). ``start_date``
    (YYYY-MM-DD) is the first daily partition; without it, the default (STREAM_ASSETS_START_DATE)."""
    partitions = daily_partitions(iso_date("start_date", start_date)) if start_date else PARTITIONS
    return [build_items(tenant, partitions), build_livestreams(tenant), build_item_views(tenant, partitions)]


# The default instance, for scripts and tests (the code location builds its own through components.py).
assets = build_assets()
streamone_items, streamone_livestreams, streamone_item_views_daily = assets
