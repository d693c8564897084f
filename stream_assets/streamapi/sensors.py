"""Poll the live list and record a snapshot whenever the set of live sessions changes.

:func:`build_jobs` and :func:`build_sensors` make them for one account: the default instance keeps
``streamapi_live_sessions_job`` and ``streamapi_live_sessions_sensor``; tenant ``acme`` gets
``streamapi_live_sessions_job_acme`` and ``streamapi_live_sessions_sensor_acme``. The module-level objects
are the default instance's.
"""

import datetime as dt
from typing import Any, Sequence

import dagster as dg

from stream_assets.core.assets import api_resource
from stream_assets.core.errors import ApiError
from stream_assets.core.tenants import Tenant
from stream_assets.streamapi.assets import (DEFAULT_TENANT, POLL_KEY_FORMAT, assets, live_sessions_key,
                                            live_set_fingerprint)
from stream_assets.streamapi.resources import DEFAULT_POLL_SECONDS, poll_seconds_at_load


def build_jobs(tenant: Tenant) -> list[Any]:
    """The job the live-session sensor asks for: one snapshot of ``tenant``'s live sessions."""
    return [dg.define_asset_job(tenant.named("streamapi_live_sessions_job"), selection=[live_sessions_key(tenant)])]


def stored_live_set(instance: dg.DagsterInstance, key: dg.AssetKey = live_sessions_key(DEFAULT_TENANT)) -> str | None:
    """The fingerprint of the last stored snapshot of ``key`` (from its materialization metadata), or None."""
    event = instance.get_latest_materialization_event(key)
    entry = event.asset_materialization.metadata.get("live_set") if event and event.asset_materialization else None
    return entry.value if entry is not None else None


def build_sensors(tenant: Tenant, assets: Sequence[dg.AssetsDefinition], *, job: Any = None,
                  poll_seconds: int = DEFAULT_POLL_SECONDS) -> list[dg.SensorDefinition]:
    """The live-session sensor of ``tenant``, polling every ``poll_seconds`` (fixed when the definitions are
    built) with the resource ``tenant.resource_key``; it adds partitions to the live-session asset of
    ``assets`` and asks ``job`` (default: :func:`build_jobs`'s) to snapshot them."""
    key = live_sessions_key(tenant)
    polls = next(a for a in assets if a.key == key).partitions_def
    job = job or build_jobs(tenant)[0]

    # `**_resources`: invoking a sensor directly (tests) passes its required resources as keyword arguments.
    def live_sessions_sensor(context: dg.SensorEvaluationContext, **_resources: Any):
        resource = api_resource(context, tenant)
        resource.poll_seconds()  # a bad live_poll_seconds / STREAMAPI_LIVE_POLL_SECONDS fails each tick, naming it
        try:
            sessions = resource.client().live_sessions()
        except ApiError as error:
            return dg.SkipReason(f"could not poll the live list: {error}")
        fingerprint = live_set_fingerprint(sessions)
        unchanged = f"live set unchanged ({len(sessions)} sessions)"
        if fingerprint == context.cursor:
            return dg.SkipReason(unchanged)
        # A first tick (empty cursor: a new deployment, the demo's start) compares with the last stored snapshot.
        if not context.cursor and fingerprint == stored_live_set(context.instance, key):
            return dg.SensorResult(skip_reason=f"{unchanged}, as stored by the last snapshot", cursor=fingerprint)
        poll = dt.datetime.now(dt.timezone.utc).strftime(POLL_KEY_FORMAT)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=poll, partition_key=poll)],
            dynamic_partitions_requests=[polls.build_add_request([poll])],
            cursor=fingerprint,
        )

    return [dg.sensor(
        name=tenant.named("streamapi_live_sessions_sensor"), job=job, minimum_interval_seconds=poll_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED, required_resource_keys={tenant.resource_key},
        description="Polls session/live/list; requests a live_sessions snapshot only when the live set changed.",
    )(live_sessions_sensor)]


# The default instance: its interval is $STREAMAPI_LIVE_POLL_SECONDS when that is good, else 60 (a bad value
# must not stop the code location from loading: each tick then reports it).
POLL_SECONDS = poll_seconds_at_load()
(live_sessions_job,) = build_jobs(DEFAULT_TENANT)
(streamapi_live_sessions_sensor,) = build_sensors(DEFAULT_TENANT, assets, job=live_sessions_job,
                                                  poll_seconds=POLL_SECONDS)
