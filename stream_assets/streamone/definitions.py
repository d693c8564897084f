"""Everything StreamOne contributes to the code location, for one account (instance)."""

import dagster as dg

from stream_assets.core.refresh import build_refresh
from stream_assets.core.tenants import Tenant
from stream_assets.streamone.assets import REFRESH_LOOKBACK_DAYS, build_assets
from stream_assets.streamone.resources import StreamOneResource
from stream_assets.streamone.schedules import build_schedules


def build_defs(tenant: Tenant, resource: StreamOneResource, *, start_date: str | None = None) -> dg.Definitions:
    """One account's assets, jobs, schedules and resource (under ``tenant.resource_key``); ``start_date``
    (YYYY-MM-DD) is its first daily partition (default: STREAM_ASSETS_START_DATE)."""
    assets = build_assets(tenant, start_date)
    scheduling = build_schedules(tenant, assets)
    refresh_job, refresh_sensor = build_refresh(tenant, assets, REFRESH_LOOKBACK_DAYS, "StreamOne")
    return dg.Definitions(
        assets=assets,
        jobs=[*scheduling.jobs, refresh_job],
        schedules=scheduling.schedules,
        sensors=[refresh_sensor],
        resources={tenant.resource_key: resource},
    )


# The default instance configured by environment, as before (the code location loads it from defs/).
defs = build_defs(Tenant("streamone"),
                  StreamOneResource(actor_id=dg.EnvVar("STREAMONE_ACTOR_ID"), psk=dg.EnvVar("STREAMONE_PSK")))
