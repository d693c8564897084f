"""Scheduling inside the Streamtime budgets: a daily schedule, and a budget-aware catch-up sensor."""

import datetime as dt
import json
import os

import dagster as dg

from stream_assets.core.assets import closed_day
from stream_assets.streamtime.assets import PARTITIONS, STATISTICS_VIEWS, daily_assets, snapshot_assets
from stream_assets.streamtime.entities import ENTITIES
from stream_assets.streamtime.resources import StreamtimeResource

daily_job = dg.define_asset_job("streamtime_daily", selection=[a.key for a in daily_assets],
                                description="Every partitioned Streamtime asset for one day (or a range).")
snapshot_job = dg.define_asset_job("streamtime_snapshots", selection=[a.key for a in snapshot_assets])
# What one partition's run costs at most: per daily entity one /search/setup, one search (a day fits in one page)
# and the empty page that proves the short one was the end (core/paging.py); per statistics view one
# /report/setup and one report.
REQUESTS_PER_PARTITION = 3 * sum(1 for e in ENTITIES if e.partitioned) + 2 * len(STATISTICS_VIEWS)
# Share of the remaining budget the sensor may spend: the rest is left to schedules and people in the UI.
SENSOR_SHARE = 0.8
IN_FLIGHT_SECONDS = 3600  # a partition requested less than this long ago is not requested again


@dg.schedule(job=daily_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def streamtime_daily_schedule(context: dg.ScheduleEvaluationContext):
    """At 00:30 UTC: the day that just closed."""
    day = closed_day(context)
    return dg.RunRequest(run_key=day, partition_key=day)


@dg.schedule(job=snapshot_job, cron_schedule="0 1 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def streamtime_snapshot_schedule(context: dg.ScheduleEvaluationContext):
    """At 01:00 UTC: every snapshot (companies, contacts, users, job items and their users, phases, milestones, line items)."""
    return dg.RunRequest(run_key=context.scheduled_execution_time.date().isoformat())


def partitions_to_refresh(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Of ``keys`` (closed days), those some daily asset lacks or last captured before the day had closed."""
    wanted = []
    for key in keys:
        day_end = dt.datetime.fromisoformat(key).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
        for asset in daily_assets:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=[key]), limit=1).records
            if not records or records[0].timestamp < day_end.timestamp():
                wanted.append(key)
                break
    return wanted


@dg.sensor(job=daily_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Requests runs for missing or stale Streamtime days, newest first, only as many as the "
           "remaining hourly request budget can serve.")
def streamtime_budget_sensor(context: dg.SensorEvaluationContext, streamtime: StreamtimeResource):
    lookback = int(os.environ.get("STREAMTIME_SENSOR_LOOKBACK_DAYS") or 60)
    now = dt.datetime.now(dt.timezone.utc)
    in_flight = {k: t for k, t in json.loads(context.cursor or "{}").items() if now.timestamp() - t < IN_FLIGHT_SECONDS}
    today = now.date().isoformat()
    closed = [k for k in PARTITIONS.get_partition_keys(current_time=now) if k < today][-lookback:]
    candidates = [k for k in reversed(partitions_to_refresh(context.instance, closed)) if k not in in_flight]
    if not candidates:
        return dg.SkipReason(f"every closed day of the last {lookback} is materialized after it closed")
    remaining = streamtime.limiter().remaining()
    requests_left = min(v for label, v in remaining.items() if "requests" in label)
    affordable = int(requests_left * SENSOR_SHARE // REQUESTS_PER_PARTITION)
    if affordable <= 0:
        return dg.SkipReason(f"Streamtime budget spent ({requests_left:.0f} requests left in the tightest window); "
                             f"{len(candidates)} day(s) wait")
    chosen = candidates[:affordable]
    for key in chosen:
        in_flight[key] = now.timestamp()
    context.log.info(f"requesting {len(chosen)} of {len(candidates)} day(s); budget left: {remaining}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{key}@{now:%Y%m%dT%H%M}", partition_key=key) for key in chosen],
        cursor=json.dumps(in_flight),
    )
