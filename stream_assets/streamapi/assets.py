"""StreamAPI assets: recordings by creation day, the themes snapshot, and live-session polls.

:func:`build_assets` makes them for one account (:class:`~stream_assets.core.tenants.Tenant`): the default
instance keeps the names below (schema and group ``streamapi``, dynamic partitions ``streamapi_live_polls``);
tenant ``acme`` gets schema and group ``streamapi_acme`` and partitions ``streamapi_live_polls_acme``. The
module-level objects are the default instance's.
"""

import datetime as dt
import hashlib
import json

import dagster as dg
import pandas as pd

from stream_assets.core.assets import (
    DAILY_FRESHNESS, api_errors, api_resource, daily_partitions, partition_window, ranged_backfill_policy,
    table_definition, table_metadata,
)
from stream_assets.core.tenants import Tenant
from stream_assets.core.validation import count_not_understood
from stream_assets.core.warehouse import Table
from stream_assets.core.windows import TimeWindow
from stream_assets.streamapi.models import COLUMN_DESCRIPTIONS

DEFAULT_TENANT = Tenant("streamapi")
GROUP = DEFAULT_TENANT.group
SCHEMA = DEFAULT_TENANT.schema
# A month of recordings per request keeps replies small (the API has no paging) and a year to 12 requests.
RECORDINGS_SPAN = dt.timedelta(days=31)
# Closed days the refresh sensor fetches again: recordings are removed (or their processing finishes) within
# days of the broadcast; two weeks cover a broadcaster's clean-up.
REFRESH_LOOKBACK_DAYS = {"video_recordings": 14}
POLL_KEY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

RECORDINGS = Table(SCHEMA, "video_recordings", (
    ("id", "VARCHAR"), ("public_hostid", "VARCHAR"), ("channel_id", "VARCHAR"), ("creation_date", "TIMESTAMP"),
    ("duration", "DOUBLE"), ("size", "BIGINT"), ("filename", "VARCHAR"), ("url", "VARCHAR"),
), "creation_date", key=("id",), non_negative=("duration", "size"))
THEMES = Table(SCHEMA, "themes", (
    ("id", "VARCHAR"), ("name", "VARCHAR"), ("width", "INTEGER"), ("height", "INTEGER"),
    ("layout_path", "VARCHAR"), ("skin_path", "VARCHAR"),
), key=("id",), non_negative=("width", "height"))
LIVE_SESSIONS = Table(SCHEMA, "live_sessions", (
    ("poll_time", "TIMESTAMP"), ("public_hostid", "VARCHAR"), ("username", "VARCHAR"), ("start_time", "TIMESTAMP"),
    ("duration", "BIGINT"), ("channel_id", "VARCHAR"), ("total_viewers", "BIGINT"), ("total_chatters", "BIGINT"),
    ("max_viewers", "BIGINT"), ("max_chatters", "BIGINT"), ("current_viewers", "BIGINT"), ("current_chatters", "BIGINT"),
), "poll_time", key=("poll_time", "public_hostid", "start_time"),
   non_negative=("duration", "total_viewers", "total_chatters", "max_viewers", "max_chatters", "current_viewers",
                 "current_chatters"))


def live_polls(tenant: Tenant) -> dg.DynamicPartitionsDefinition:
    """The poll times of ``tenant``'s live-session snapshots (added by its sensor)."""
    return dg.DynamicPartitionsDefinition(name=tenant.named("streamapi_live_polls"))


def live_sessions_key(tenant: Tenant) -> dg.AssetKey:
    return dg.AssetKey([tenant.prefix, LIVE_SESSIONS.name])


LIVE_POLLS = live_polls(DEFAULT_TENANT)


def live_set_fingerprint(sessions: list) -> str:
    """Which sessions are live (host and start time), independent of their changing viewer counts."""
    live = sorted((s.public_hostid, s.start_time.isoformat()) for s in sessions)
    return hashlib.sha256(json.dumps(live).encode()).hexdigest()[:16]


def frame_of(models: list, table: Table, **constants: object) -> pd.DataFrame:
    """Models as the table's rows (``model_dump`` leaves out broadcaster secrets such as private_hostid)."""
    frame = pd.DataFrame([{**constants, **m.model_dump()} for m in models], columns=table.column_names)
    return frame[table.column_names]


def _metadata(table: Table) -> dict:
    return table_definition(table, COLUMN_DESCRIPTIONS[table.name])


def _named(tenant: Tenant, table: Table, fn):
    """Give the asset function a name unique to the instance (``streamapi_acme_themes``)."""
    fn.__name__ = fn.__qualname__ = f"{tenant.prefix}_{table.name}"
    return fn


def build_assets(tenant: Tenant, start_date: str | None = None) -> list[dg.AssetsDefinition]:
    """The recordings, themes and live-session assets of one StreamAPI account, writing to ``tenant.schema``
    through the resource ``tenant.resource_key``; daily partitions from ``start_date`` (None:
    ``STREAM_ASSETS_START_DATE``, read for the module-level default objects)."""
    recordings_table = RECORDINGS.in_schema(tenant.schema)
    themes_table = THEMES.in_schema(tenant.schema)
    live_table = LIVE_SESSIONS.in_schema(tenant.schema)
    resource_keys = {tenant.resource_key, "warehouse"}
    polls = live_polls(tenant)

    def video_recordings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        window = partition_window(context)
        client = api_resource(context, tenant).client()
        warehouse = context.resources.warehouse
        recordings = []
        with api_errors(context):
            for chunk in window.chunks(RECORDINGS_SPAN):
                recordings.extend(client.recordings_in(chunk))
                context.log.info(f"video/list {chunk}: {len(recordings)} recordings so far")
            frame = frame_of(recordings, recordings_table)
            written = warehouse.replace(recordings_table, frame, window)
        not_understood = count_not_understood(recordings)
        if not_understood:
            context.log.warning(f"video/list: values in an unexpected format stored as NULL: {not_understood}")
        return dg.MaterializeResult(metadata=table_metadata(
            frame, window, table=recordings_table, requests=client.requests_made, rows_written=written,
            fields_not_understood=dg.MetadataValue.json(not_understood)))

    def themes(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        client = api_resource(context, tenant).client()
        with api_errors(context):
            frame = frame_of(client.themes(), themes_table)
            context.resources.warehouse.replace(themes_table, frame)
        return dg.MaterializeResult(metadata=table_metadata(frame, None, requests=client.requests_made))

    def live_sessions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        poll_time = dt.datetime.strptime(context.partition_key, POLL_KEY_FORMAT).replace(tzinfo=dt.timezone.utc)
        window = TimeWindow(poll_time, poll_time + dt.timedelta(seconds=1))
        client = api_resource(context, tenant).client()
        with api_errors(context):
            sessions = client.live_sessions()
            frame = frame_of(sessions, live_table, poll_time=poll_time)
            context.resources.warehouse.replace(live_table, frame, window)
        # The sensor compares its first poll with this fingerprint, so a restart does not store the same set twice.
        return dg.MaterializeResult(metadata=table_metadata(frame, window, table=live_table,
                                                            requests=client.requests_made,
                                                            live_set=live_set_fingerprint(sessions)))

    recordings_asset = dg.asset(
        key=[tenant.prefix, recordings_table.name], group_name=tenant.group, partitions_def=daily_partitions(start_date), freshness_policy=DAILY_FRESHNESS,
        backfill_policy=ranged_backfill_policy(), kinds={"duckdb", "python"}, required_resource_keys=resource_keys,
        metadata=_metadata(recordings_table),
        description="Live-session recordings by UTC creation day (video/list with start_date/end_date in epoch ms).",
    )(_named(tenant, recordings_table, video_recordings))
    themes_asset = dg.asset(
        key=[tenant.prefix, themes_table.name], group_name=tenant.group, kinds={"duckdb", "python"},
        required_resource_keys=resource_keys, metadata=_metadata(themes_table),
        description="Snapshot of the layout themes (theme/list), replaced whole on each run.",
    )(_named(tenant, themes_table, themes))
    live_asset = dg.asset(
        key=[tenant.prefix, live_table.name], group_name=tenant.group, partitions_def=polls, kinds={"duckdb", "python"},
        required_resource_keys=resource_keys, metadata=_metadata(live_table),
        description=f"The live sessions (session/live/list) as seen at each poll; one partition per poll time, "
        f"added by the {tenant.named('streamapi_live_sessions_sensor')} sensor whenever the live set changes. "
        "Public ids only.",
    )(_named(tenant, live_table, live_sessions))
    return [recordings_asset, themes_asset, live_asset]


assets = build_assets(DEFAULT_TENANT)
streamapi_video_recordings, streamapi_themes, streamapi_live_sessions = assets
