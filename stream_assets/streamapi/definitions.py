"""Everything StreamAPI contributes to the code location: :func:`build_defs` for one account, and ``defs``,
the default instance (credentials from STREAMAPI_KEY / STREAMAPI_SECRET, today's names)."""

import dagster as dg

from stream_assets.core.refresh import build_refresh
from stream_assets.core.tenants import Tenant
from stream_assets.streamapi.assets import DEFAULT_TENANT, REFRESH_LOOKBACK_DAYS, build_assets
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets.streamapi.sensors import build_jobs, build_sensors


def build_defs(tenant: Tenant, resource: StreamApiResource, *, start_date: str | None = None,
               live_poll_seconds: int | None = None) -> dg.Definitions:
    """One StreamAPI account: its assets (daily partitions from ``start_date``; None:
    ``STREAM_ASSETS_START_DATE``), the live-session job and sensor (polling every ``live_poll_seconds``; None:
    the resource's ``live_poll_seconds``, else ``STREAMAPI_LIVE_POLL_SECONDS``, else 60, as read now), and
    ``resource`` under ``tenant.resource_key``. The warehouse (resource ``warehouse``) is shared and
    provided by the code location."""
    assets = build_assets(tenant, start_date)
    jobs = build_jobs(tenant)
    poll_seconds = resource.poll_seconds_at_load() if live_poll_seconds is None else live_poll_seconds
    sensors = build_sensors(tenant, assets, job=jobs[0], poll_seconds=poll_seconds)
    refresh_job, refresh_sensor = build_refresh(tenant, assets, REFRESH_LOOKBACK_DAYS, "StreamAPI")
    return dg.Definitions(assets=assets, jobs=[*jobs, refresh_job], sensors=[*sensors, refresh_sensor],
                          resources={tenant.resource_key: resource})


defs = build_defs(DEFAULT_TENANT,
                  StreamApiResource(key=dg.EnvVar("STREAMAPI_KEY"), secret=dg.EnvVar("STREAMAPI_SECRET")))
