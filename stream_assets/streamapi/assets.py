"""StreamAPI assets: recordings by creation day, the themes snapshot, and live-session polls."""

import datetime as dt
import hashlib
import json

import dagster as dg
import pandas as pd

from stream_assets.core.assets import api_errors, daily_partitions, partition_window, ranged_backfill_policy, table_metadata
from stream_assets.core.validation import count_not_understood
from stream_assets.core.warehouse import Table, Warehouse
from stream_assets.core.windows import TimeWindow
from stream_assets.streamapi.resources import StreamApiResource

GROUP = "streamapi"
SCHEMA = "streamapi"
# A month of recordings per request keeps replies small (the API has no paging) and a year to 12 requests.
RECORDINGS_SPAN = dt.timedelta(days=31)
LIVE_POLLS = dg.DynamicPartitionsDefinition(name="streamapi_live_polls")
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


def live_set_fingerprint(sessions: list) -> str:
    """Which sessions are live (host and start time), independent of their changing viewer counts."""
    live = sorted((s.public_hostid, s.start_time.isoformat()) for s in sessions)
    return hashlib.sha256(json.dumps(live).encode()).hexdigest()[:16]


def frame_of(models: list, table: Table, **constants: object) -> pd.DataFrame:
    """Models as the table's rows (``model_dump`` leaves out broadcaster secrets such as private_hostid)."""
    frame = pd.DataFrame([{**constants, **m.model_dump()} for m in models], columns=table.column_names)
    return frame[table.column_names]


@dg.asset(
    key=[SCHEMA, "video_recordings"], group_name=GROUP, partitions_def=daily_partitions(),
    backfill_policy=ranged_backfill_policy(), kinds={"duckdb", "python"},
    description="Live-session recordings by UTC creation day (video/list with start_date/end_date in epoch ms).",
)
def streamapi_video_recordings(context: dg.AssetExecutionContext, streamapi: StreamApiResource,
                               warehouse: Warehouse) -> dg.MaterializeResult:
    window = partition_window(context)
    client = streamapi.client()
    recordings = []
    with api_errors(context):
        for chunk in window.chunks(RECORDINGS_SPAN):
            recordings.extend(client.recordings_in(chunk))
            context.log.info(f"video/list {chunk}: {len(recordings)} recordings so far")
        frame = frame_of(recordings, RECORDINGS)
        written = warehouse.replace(RECORDINGS, frame, window)
    not_understood = count_not_understood(recordings)
    if not_understood:
        context.log.warning(f"video/list: values in an unexpected format stored as NULL: {not_understood}")
    return dg.MaterializeResult(metadata=table_metadata(
        frame, window, table=RECORDINGS, requests=client.requests_made, rows_written=written,
        fields_not_understood=dg.MetadataValue.json(not_understood)))


@dg.asset(key=[SCHEMA, "themes"], group_name=GROUP, kinds={"duckdb", "python"},
          description="Snapshot of the layout themes (theme/list), replaced whole on each run.")
def streamapi_themes(context: dg.AssetExecutionContext, streamapi: StreamApiResource,
                     warehouse: Warehouse) -> dg.MaterializeResult:
    client = streamapi.client()
    with api_errors(context):
        frame = frame_of(client.themes(), THEMES)
        warehouse.replace(THEMES, frame)
    return dg.MaterializeResult(metadata=table_metadata(frame, None, requests=client.requests_made))


@dg.asset(
    key=[SCHEMA, "live_sessions"], group_name=GROUP, partitions_def=LIVE_POLLS, kinds={"duckdb", "python"},
    description="The live sessions (session/live/list) as seen at each poll; one partition per poll time, "
    "added by the streamapi_live_sessions sensor whenever the live set changes. Public ids only.",
)
def streamapi_live_sessions(context: dg.AssetExecutionContext, streamapi: StreamApiResource,
                            warehouse: Warehouse) -> dg.MaterializeResult:
    poll_time = dt.datetime.strptime(context.partition_key, POLL_KEY_FORMAT).replace(tzinfo=dt.timezone.utc)
    window = TimeWindow(poll_time, poll_time + dt.timedelta(seconds=1))
    client = streamapi.client()
    with api_errors(context):
        sessions = client.live_sessions()
        frame = frame_of(sessions, LIVE_SESSIONS, poll_time=poll_time)
        warehouse.replace(LIVE_SESSIONS, frame, window)
    # The sensor compares its first poll with this fingerprint, so a restart does not store the same set twice.
    return dg.MaterializeResult(metadata=table_metadata(frame, window, table=LIVE_SESSIONS, requests=client.requests_made,
                                                        live_set=live_set_fingerprint(sessions)))


assets = [streamapi_video_recordings, streamapi_themes, streamapi_live_sessions]
