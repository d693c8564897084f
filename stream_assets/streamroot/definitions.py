"""Everything Streamroot contributes to the code location, for one account (instance) at a time."""

from __future__ import annotations

import dagster as dg

from stream_assets.core.refresh import build_refresh
from stream_assets.core.tenants import Tenant
from stream_assets.streamroot.assets import DEFAULT_TENANT, REFRESH_LOOKBACK_DAYS, build_assets
from stream_assets.streamroot.resources import StreamrootResource
from stream_assets.streamroot.schedules import build_job, build_schedules


def build_defs(tenant: Tenant, resource: StreamrootResource, *, start_date: str | None = None) -> dg.Definitions:
    """One Streamroot instance: its assets (and their checks), job, schedule and refresh sensor, named for ``tenant``, with
    ``resource`` under the tenant's resource key (``streamroot``, ``streamroot_acme``, ...). Daily partitions
    start at ``start_date`` (YYYY-MM-DD; None: ``STREAM_ASSETS_START_DATE``). The warehouse is shared: the
    code location provides it under the key ``warehouse``."""
    job = build_job(tenant)
    assets = build_assets(tenant, start_date)
    refresh_job, refresh_sensor = build_refresh(tenant, assets, REFRESH_LOOKBACK_DAYS, "Streamroot")
    return dg.Definitions(
        assets=assets,
        jobs=[job, refresh_job],
        schedules=build_schedules(tenant, job),
        sensors=[refresh_sensor],
        resources={tenant.resource_key: resource},
    )


def default_resource() -> StreamrootResource:
    """The default instance's resource: the credentials of ``STREAMROOT_API_KEY``/``STREAMROOT_CUSTOMER_ID``,
    read when a run uses them (the other settings fall back to their variables at run time)."""
    return StreamrootResource(api_key=dg.EnvVar("STREAMROOT_API_KEY"),
                              customer_id=dg.EnvVar("STREAMROOT_CUSTOMER_ID"))


defs = build_defs(DEFAULT_TENANT, default_resource())
