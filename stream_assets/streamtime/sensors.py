"""Scheduling inside the Streamtime budgets: a daily schedule, and a budget-aware catch-up sensor."""

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import dagster as dg

from stream_assets.core import config
from stream_assets.core.assets import api_resource, closed_day
from stream_assets.core.refresh import RefreshTarget, build_refresh_sensor, last_fetches
from stream_assets.core.tenants import Tenant
from stream_assets.streamtime.assets import (
    DEFAULT, STATISTICS_LOOKBACK_DAYS, STATISTICS_VIEWS, assets as default_assets, partitioned, snapshots,
)
from stream_assets.streamtime.client import MAX_LIMIT, REPORT_CHUNK_DAYS
from stream_assets.streamtime.drift import DRIFT_CHECK, DRIFT_FIGURES
from stream_assets.streamtime.entities import BY_NAME, ENTITIES

# What one partition's run costs at most: per daily entity one /search/setup, one search (a day fits in one page)
# and the empty page that proves the short one was the end (core/paging.py); per statistics view one
# /report/setup and one report.
REQUESTS_PER_PARTITION = 3 * sum(1 for e in ENTITIES if e.partitioned) + 2 * len(STATISTICS_VIEWS)
# Share of the remaining budget the sensor may spend: the rest is left to schedules and people in the UI.
SENSOR_SHARE = 0.8
IN_FLIGHT_SECONDS = 3600  # a partition requested less than this long ago is not requested again


@dataclass(frozen=True)
class Scheduling:
    """One instance's jobs, schedules and sensor."""

    daily_job: Any  # asset jobs, resolved when the definitions are
    snapshot_job: Any
    daily_schedule: dg.ScheduleDefinition
    snapshot_schedule: dg.ScheduleDefinition
    budget_sensor: dg.SensorDefinition
    refresh_sensor: dg.SensorDefinition
    drift_check_job: Any

    @property
    def jobs(self) -> list:
        return [self.daily_job, self.snapshot_job, self.drift_check_job]

    @property
    def sensors(self) -> list[dg.SensorDefinition]:
        return [self.budget_sensor, self.refresh_sensor]


def _search_cost(days: int, rows: int) -> int:
    """Requests of one entity over a range: its /search/setup, the pages, and the probe after a short page."""
    return 2 + math.ceil((rows + 1) / MAX_LIMIT)


def _report_cost(views: int) -> Any:
    """Requests of reports over a range: per view its /report/setup and one report per chunk of days."""
    return lambda days, rows=0: views * (1 + math.ceil(days / REPORT_CHUNK_DAYS))


def refresh_targets(tenant: Tenant, daily: list[dg.AssetsDefinition]) -> list[RefreshTarget]:
    """Every daily asset of the instance with its lookback, request cost and drift check."""
    targets = []
    for asset in daily:
        entity = BY_NAME.get(asset.key.path[-1])
        check = dg.AssetCheckKey(asset.key, DRIFT_CHECK) if entity and entity.name in DRIFT_FIGURES else None
        targets.append(RefreshTarget(
            asset.key, asset.partitions_def,
            entity.refresh_lookback_days if entity else STATISTICS_LOOKBACK_DAYS,
            drift_check=check, cost=_search_cost if entity else _report_cost(len(STATISTICS_VIEWS)),
            check_cost=_report_cost(1) if check else (lambda days: 0)))
    return targets


def _requests_left(streamtime: Any) -> tuple[float, str]:
    """The requests left in the tightest of the organisation's request budgets, and which one it is."""
    remaining = streamtime.limiter().remaining()
    label, left = min(((k, v) for k, v in remaining.items() if "requests" in k), key=lambda kv: kv[1])
    return left, f"Streamtime budget {label}"


def partitions_to_refresh(instance: dg.DagsterInstance, keys: list[str],
                          daily: list[dg.AssetsDefinition] | None = None) -> list[str]:
    """Of ``keys`` (closed days), those some daily asset lacks or last captured before the day had closed: one
    instance query for all of them (core/refresh.py: a day's partitions are never materialized before it)."""
    if not keys:
        return []
    assets = daily if daily is not None else partitioned(default_assets)
    since = dt.datetime.fromisoformat(min(keys)).replace(tzinfo=dt.timezone.utc).timestamp()
    fetches = last_fetches(instance, [a.key for a in assets], since)
    wanted = []
    for key in keys:
        day_end = (dt.datetime.fromisoformat(key).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)).timestamp()
        if any((fetch := fetches.get((asset.key, key))) is None or fetch.at < day_end for asset in assets):
            wanted.append(key)
    return wanted


def build_scheduling(tenant: Tenant, assets: list[dg.AssetsDefinition]) -> Scheduling:
    """The daily schedule, the snapshot schedule and the budget-aware catch-up sensor of one instance."""
    daily, snapshot = partitioned(assets), snapshots(assets)
    partitions = daily[0].partitions_def
    # The drift checks run in a job of their own (the refresh sensor's, or from the UI): after a fetch they
    # would only spend budget confirming it.
    daily_job = dg.define_asset_job(tenant.named("streamtime_daily"),
                                    selection=dg.AssetSelection.assets(*[a.key for a in daily]).without_checks(),
                                    description="Every partitioned Streamtime asset for one day (or a range).")
    targets = refresh_targets(tenant, daily)
    drift_check_job = dg.define_asset_job(
        tenant.named("streamtime_drift_check"),
        selection=dg.AssetSelection.checks(*[t.drift_check for t in targets if t.drift_check]),
        description="Compares days of the warehouse with Streamtime's own report (one report per view and month).")
    snapshot_job = dg.define_asset_job(tenant.named("streamtime_snapshots"), selection=[a.key for a in snapshot])

    @dg.schedule(name=tenant.named("streamtime_daily_schedule"), job=daily_job, cron_schedule="30 0 * * *",
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
    def daily_schedule(context: dg.ScheduleEvaluationContext):
        """At 00:30 UTC: the day that just closed."""
        day = closed_day(context)
        return dg.RunRequest(run_key=day, partition_key=day)

    @dg.schedule(name=tenant.named("streamtime_snapshot_schedule"), job=snapshot_job, cron_schedule="0 1 * * *",
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
    def snapshot_schedule(context: dg.ScheduleEvaluationContext):
        """At 01:00 UTC: every snapshot (companies, contacts, users, job items and their users, phases, milestones, line items)."""
        return dg.RunRequest(run_key=context.scheduled_execution_time.date().isoformat())

    @dg.sensor(name=tenant.named("streamtime_budget_sensor"), job=daily_job, minimum_interval_seconds=config.sensor_seconds(),
               default_status=dg.DefaultSensorStatus.STOPPED, required_resource_keys={tenant.resource_key},
               description="Requests runs for missing or stale Streamtime days, newest first, only as many as the "
               "remaining hourly request budget can serve.")
    def budget_sensor(context: dg.SensorEvaluationContext, **_resources: object):
        # (a sensor invoked directly, as in tests, also gets its resources as keywords)
        streamtime = api_resource(context, tenant)
        lookback = streamtime.sensor_lookback()
        now = dt.datetime.now(dt.timezone.utc)
        in_flight = {k: t for k, t in json.loads(context.cursor or "{}").items() if now.timestamp() - t < IN_FLIGHT_SECONDS}
        today = now.date().isoformat()
        closed = [k for k in partitions.get_partition_keys(current_time=now) if k < today][-lookback:]
        candidates = [k for k in reversed(partitions_to_refresh(context.instance, closed, daily)) if k not in in_flight]
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

    refresh_sensor = build_refresh_sensor(
        name=tenant.named("streamtime_refresh_sensor"), api=f"Streamtime ({tenant.group})", job=daily_job,
        targets=targets, resource_key=tenant.resource_key, minimum_interval_seconds=config.sensor_seconds(),
        budget=_requests_left, budget_share=SENSOR_SHARE, check_job=drift_check_job)
    return Scheduling(daily_job, snapshot_job, daily_schedule, snapshot_schedule, budget_sensor, refresh_sensor,
                      drift_check_job)


# The default instance's, for scripts and tests (the code location builds its own through components.py).
_default = build_scheduling(DEFAULT, default_assets)
daily_job, snapshot_job = _default.daily_job, _default.snapshot_job
streamtime_daily_schedule, streamtime_snapshot_schedule = _default.daily_schedule, _default.snapshot_schedule
streamtime_budget_sensor = _default.budget_sensor
streamtime_refresh_sensor = _default.refresh_sensor
