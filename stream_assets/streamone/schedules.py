"""StreamOne schedules: yesterday's items once the day has closed, and today's view snapshot.

:func:`build_schedules` makes the jobs and schedules of one instance; the module-level objects are the default
instance's, with today's names."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

import dagster as dg

from stream_assets.core.assets import closed_day
from stream_assets.core.tenants import Tenant
from stream_assets.streamone.assets import DEFAULT, assets as default_assets


@dataclass(frozen=True)
class Scheduling:
    """An instance's jobs and schedules."""

    items_job: Any  # what dg.define_asset_job returns
    snapshot_job: Any
    items_daily: dg.ScheduleDefinition
    daily_snapshot: dg.ScheduleDefinition

    @property
    def jobs(self) -> list[Any]:
        return [self.items_job, self.snapshot_job]

    @property
    def schedules(self) -> list[dg.ScheduleDefinition]:
        return [self.items_daily, self.daily_snapshot]


def build_schedules(tenant: Tenant, assets: Sequence[dg.AssetsDefinition]) -> Scheduling:
    """The jobs and schedules of one instance, over its ``assets`` (as :func:`assets.build_assets` makes them):
    ``streamone_items_daily`` and ``streamone_snapshots`` (``..._acme`` for tenant ``acme``)."""
    by_table = {a.key.path[-1]: a.key for a in assets if a.key.path[0] == tenant.prefix}
    items_job = dg.define_asset_job(tenant.named("streamone_items_daily"), selection=[by_table["items"]])
    snapshot_job = dg.define_asset_job(tenant.named("streamone_snapshots"),
                                       selection=[by_table["item_views_daily"], by_table["livestreams"]])

    def items_daily(context: dg.ScheduleEvaluationContext):
        """At 00:20 UTC: the day that just closed."""
        day = closed_day(context)
        return dg.RunRequest(run_key=day, partition_key=day)

    def daily_snapshot(context: dg.ScheduleEvaluationContext):
        """At 23:50 UTC: today's view totals (the only day that can be recorded) and the live streams."""
        day = context.scheduled_execution_time.astimezone(dt.timezone.utc).date().isoformat()
        return dg.RunRequest(run_key=day, partition_key=day)

    return Scheduling(
        items_job, snapshot_job,
        dg.schedule(job=items_job, cron_schedule="20 0 * * *", execution_timezone="UTC",
                    name=tenant.named("streamone_items_daily"),
                    default_status=dg.DefaultScheduleStatus.STOPPED)(items_daily),
        dg.schedule(job=snapshot_job, cron_schedule="50 23 * * *", execution_timezone="UTC",
                    name=tenant.named("streamone_daily_snapshot"),
                    default_status=dg.DefaultScheduleStatus.STOPPED)(daily_snapshot),
    )


# The default instance, for scripts and tests (the code location builds its own through components.py).
_default = build_schedules(DEFAULT, default_assets)
items_job, snapshot_job = _default.items_job, _default.snapshot_job
streamone_items_daily, streamone_daily_snapshot = _default.items_daily, _default.daily_snapshot
