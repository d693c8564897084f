"""Keep Streamroot current: refresh today's partition every hour, and finalize yesterday after midnight.

:func:`build_job` and :func:`build_schedules` make them for one account; the module-level
``streamroot_job`` and ``streamroot_hourly`` are the default instance's (names ``streamroot_daily`` and
``streamroot_hourly``; tenant ``acme`` gets ``streamroot_daily_acme`` and ``streamroot_hourly_acme``).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from stream_assets.core.tenants import Tenant
from stream_assets.streamroot.assets import DEFAULT_TENANT


def build_job(tenant: Tenant = DEFAULT_TENANT) -> dg.UnresolvedAssetJobDefinition:
    """Every asset of the instance's group for one day (or a range of days, in a backfill)."""
    return dg.define_asset_job(
        tenant.named("streamroot_daily"),
        selection=dg.AssetSelection.groups(tenant.group),
        description=f"Every {tenant.label()} asset for one day (or a range of days, in a backfill).",
    )


def build_schedules(tenant: Tenant, job: dg.UnresolvedAssetJobDefinition) -> list[dg.ScheduleDefinition]:
    """The instance's hourly schedule of ``job`` (stopped until someone starts it)."""

    @dg.schedule(name=tenant.named("streamroot_hourly"), job=job, cron_schedule="10 * * * *",
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
    def hourly(context: dg.ScheduleEvaluationContext):
        """At 10 past every hour: today's partition so far; at 00:10 also yesterday, now that it has closed."""
        now = context.scheduled_execution_time.astimezone(dt.timezone.utc)
        today = now.date()
        yield dg.RunRequest(run_key=f"{today}@{now:%H}", partition_key=today.isoformat(),
                            tags={"stream_assets/reason": "refresh today"})
        if now.hour == 0:
            yesterday = (today - dt.timedelta(days=1)).isoformat()
            yield dg.RunRequest(run_key=f"{yesterday}@final", partition_key=yesterday,
                                tags={"stream_assets/reason": "finalize closed day"})

    return [hourly]


# The default instance's job and schedule.
streamroot_job = build_job(DEFAULT_TENANT)
(streamroot_hourly,) = build_schedules(DEFAULT_TENANT, streamroot_job)
