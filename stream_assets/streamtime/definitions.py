"""Everything Streamtime contributes to the code location, for one organisation (instance)."""

import dagster as dg

from stream_assets.core.tenants import Tenant
from stream_assets.streamtime.assets import build_assets, build_checks
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets.streamtime.sensors import build_scheduling


def build_defs(tenant: Tenant, resource: StreamtimeResource, *, start_date: str | None = None) -> dg.Definitions:
    """One organisation's assets, drift checks, jobs, schedules, sensors and resource (``tenant.resource_key``)."""
    assets = build_assets(tenant, start_date)
    scheduling = build_scheduling(tenant, assets)
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks(tenant, assets),
        jobs=scheduling.jobs,
        schedules=[scheduling.daily_schedule, scheduling.snapshot_schedule],
        sensors=scheduling.sensors,
        resources={tenant.resource_key: resource},
    )


# The default instance configured by environment, as before (the code location loads it from defs/).
defs = build_defs(Tenant("streamtime"), StreamtimeResource(api_key=dg.EnvVar("STREAMTIME_API_KEY")))
