"""Keep Streamroot current: refresh today's partition every hour, and finalize yesterday after midnight."""


import datetime as dt

import dagster as dg

from stream_assets.streamroot.assets import GROUP

streamroot_job = dg.define_asset_job(
    "streamroot_daily",
    selection=dg.AssetSelection.groups(GROUP),
    description="Every Streamroot asset for one day (or a range of days, in a backfill).",
)


@dg.schedule(job=streamroot_job, cron_schedule="10 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def streamroot_hourly(context: dg.ScheduleEvaluationContext):
    """At 10 past every hour: today's partition so far; at 00:10 also yesterday, now that it has closed."""
    now = context.scheduled_execution_time.astimezone(dt.timezone.utc)
    today = now.date()
    yield dg.RunRequest(run_key=f"{today}@{now:%H}", partition_key=today.isoformat(),
                        tags={"stream_assets/reason": "refresh today"})
    if now.hour == 0:
        yesterday = (today - dt.timedelta(days=1)).isoformat()
        yield dg.RunRequest(run_key=f"{yesterday}@final", partition_key=yesterday,
                            tags={"stream_assets/reason": "finalize closed day"})
