"""StreamOne schedules: yesterday's items once the day has closed, and today's view snapshot."""

import datetime as dt

import dagster as dg

from stream_assets.core.assets import closed_day
from stream_assets.streamone.assets import streamone_item_views_daily, streamone_items, streamone_livestreams

items_job = dg.define_asset_job("streamone_items_daily", selection=[streamone_items.key])
snapshot_job = dg.define_asset_job("streamone_snapshots", selection=[streamone_item_views_daily.key, streamone_livestreams.key])


@dg.schedule(job=items_job, cron_schedule="20 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def streamone_items_daily(context: dg.ScheduleEvaluationContext):
    """At 00:20 UTC: the day that just closed."""
    day = closed_day(context)
    return dg.RunRequest(run_key=day, partition_key=day)


@dg.schedule(job=snapshot_job, cron_schedule="50 23 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def streamone_daily_snapshot(context: dg.ScheduleEvaluationContext):
    """At 23:50 UTC: today's view totals (the only day that can be recorded) and the live streams."""
    day = context.scheduled_execution_time.astimezone(dt.timezone.utc).date().isoformat()
    return dg.RunRequest(run_key=day, partition_key=day)
