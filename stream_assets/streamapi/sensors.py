"""Poll the live list and record a snapshot whenever the set of live sessions changes."""

import datetime as dt
import dagster as dg

from stream_assets.core import config
from stream_assets.core.errors import ApiError, SettingError
from stream_assets.streamapi.assets import LIVE_POLLS, POLL_KEY_FORMAT, live_set_fingerprint, streamapi_live_sessions
from stream_assets.streamapi.resources import StreamApiResource

DEFAULT_POLL_SECONDS = 60


def poll_seconds() -> int:
    """STREAMAPI_LIVE_POLL_SECONDS, checked (SettingError names the variable)."""
    return int(config.env_number("STREAMAPI_LIVE_POLL_SECONDS", DEFAULT_POLL_SECONDS, integer=True))


try:
    POLL_SECONDS = poll_seconds()
except SettingError:  # a bad value must not stop the code location from loading: the sensor reports it
    POLL_SECONDS = DEFAULT_POLL_SECONDS

live_sessions_job = dg.define_asset_job("streamapi_live_sessions_job", selection=[streamapi_live_sessions.key])


def stored_live_set(instance: dg.DagsterInstance) -> str | None:
    """The fingerprint of the last stored snapshot (from its materialization metadata), or None."""
    event = instance.get_latest_materialization_event(streamapi_live_sessions.key)
    entry = event.asset_materialization.metadata.get("live_set") if event and event.asset_materialization else None
    return entry.value if entry is not None else None


@dg.sensor(job=live_sessions_job, minimum_interval_seconds=POLL_SECONDS,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Polls session/live/list; requests a live_sessions snapshot only when the live set changed.")
def streamapi_live_sessions_sensor(context: dg.SensorEvaluationContext, streamapi: StreamApiResource):
    poll_seconds()  # a bad STREAMAPI_LIVE_POLL_SECONDS fails each tick, naming the variable
    try:
        sessions = streamapi.client().live_sessions()
    except ApiError as error:
        return dg.SkipReason(f"could not poll the live list: {error}")
    fingerprint = live_set_fingerprint(sessions)
    unchanged = f"live set unchanged ({len(sessions)} sessions)"
    if fingerprint == context.cursor:
        return dg.SkipReason(unchanged)
    # A first tick (empty cursor: a new deployment, the demo's start) compares with the last stored snapshot.
    if not context.cursor and fingerprint == stored_live_set(context.instance):
        return dg.SensorResult(skip_reason=f"{unchanged}, as stored by the last snapshot", cursor=fingerprint)
    key = dt.datetime.now(dt.timezone.utc).strftime(POLL_KEY_FORMAT)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, partition_key=key)],
        dynamic_partitions_requests=[LIVE_POLLS.build_add_request([key])],
        cursor=fingerprint,
    )
