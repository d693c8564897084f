"""Keeping the warehouse equal to the source: which closed days to fetch again, and one refresh sensor per
API instance that asks for them (design.md, "Keeping the warehouse equal to the source").

A closed day is not final: time is logged late, invoices edited, items archived, recordings removed. Each daily
asset has a *lookback* (how many closed days its source may still change) and the instance a *refresh period*:
every day inside the lookback is fetched again at least once per period. A refresh replaces the day whole, so
added, changed and deleted records follow.

Reading the instance costs one query per tick (two with drift checks), whatever the number of days and assets:
a partition of day D is never materialized before D begins, so every materialization of a day inside the
lookback is newer than the lookback's first day, and one event query from there sees them all.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from stream_assets.core import config
from stream_assets.core.tenants import Tenant

# A day requested less than this long ago is not requested again (its run may still be queued or running).
IN_FLIGHT_SECONDS = 3600
# A day whose drift check failed after its last fetch is fetched again once that fetch is this old (not at
# once: a check that disagrees with a fetch of the same moment would otherwise ask for it every tick).
DRIFT_REFETCH_SECONDS = 3600


@dataclass(frozen=True)
class RefreshTarget:
    """A daily asset the refresh sensor keeps equal to its source."""

    key: dg.AssetKey
    partitions_def: dg.TimeWindowPartitionsDefinition
    lookback_days: int  # the asset's own default; the instance's ``refresh_lookback_days`` overrides it
    ranged: bool = True  # one run may cover a range of days (a single-run backfill policy)
    drift_check: dg.AssetCheckKey | None = None  # the check comparing its days with the source's report
    # requests one run of ``days`` days holding about ``rows`` rows costs (for budgeted APIs)
    cost: Callable[[int, int], int] = lambda days, rows: 0
    check_cost: Callable[[int], int] = lambda days: 0  # requests of its drift check over ``days`` days


@dataclass(frozen=True)
class Fetch:
    """The last materialization of one day of one asset."""

    at: float
    run_id: str
    rows: int | None = None


@dataclass
class DueDay:
    target: RefreshTarget
    day: str
    last: Fetch | None
    drift: bool  # the source's report disagreed after the last fetch

    @property
    def priority(self) -> tuple:
        """Smaller first: days that drifted, then never fetched, then the longest since their fetch."""
        return (not self.drift, self.last.at if self.last else 0.0, self.day)


@dataclass
class PlannedRun:
    """One run of the refresh: some assets over one range of days."""

    start: str
    end: str
    targets: list[RefreshTarget]
    days: list[DueDay] = field(default_factory=list)

    @property
    def priority(self) -> tuple:
        return min(day.priority for day in self.days)

    @property
    def day_count(self) -> int:
        return (dt.date.fromisoformat(self.end) - dt.date.fromisoformat(self.start)).days + 1

    def cost(self, rows_per_day: dict[tuple[dg.AssetKey, str], int]) -> int:
        total = 0
        for target in self.targets:
            rows = sum(rows_per_day.get((target.key, day), 0) for day in _days(self.start, self.end))
            total += target.cost(self.day_count, rows)
        return total

    def request(self, now: dt.datetime, job_name: str | None = None) -> dg.RunRequest:
        names = "+".join(sorted(t.key.to_user_string() for t in self.targets))
        span = self.start if self.start == self.end else f"{self.start}...{self.end}"
        run_key = f"refresh:{names}:{span}@{now:%Y%m%dT%H%M}"
        selection = [t.key for t in self.targets]
        if self.start == self.end:
            return dg.RunRequest(run_key=run_key, asset_selection=selection, partition_key=self.start,
                                 job_name=job_name, tags={"stream_assets/refresh": "true"})
        return dg.RunRequest(run_key=run_key, asset_selection=selection, job_name=job_name, tags={
            ASSET_PARTITION_RANGE_START_TAG: self.start, ASSET_PARTITION_RANGE_END_TAG: self.end,
            "stream_assets/refresh": "true"})


def _days(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def lookback_days(target: RefreshTarget, lookback: int, now: dt.datetime) -> list[str]:
    """The closed days (before today, UTC) of the last ``lookback`` that the asset's partitions hold."""
    if lookback <= 0:
        return []
    today = now.date()
    first = (today - dt.timedelta(days=lookback)).isoformat()
    keys = target.partitions_def.get_partition_keys(current_time=now)
    return [k for k in keys[-(lookback + 2):] if first <= k < today.isoformat()]


def last_fetches(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey], since: float) -> dict[tuple[dg.AssetKey, str], Fetch]:
    """The last materialization after ``since`` of every (asset, day) of ``keys``: one event query."""
    wanted = set(keys)
    found: dict[tuple[dg.AssetKey, str], Fetch] = {}
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION, after_timestamp=since), ascending=True)
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or materialization.asset_key not in wanted or materialization.partition is None:
            continue
        rows = materialization.metadata.get("dagster/row_count")
        found[(materialization.asset_key, materialization.partition)] = Fetch(
            record.timestamp, record.run_id, int(rows.value) if rows is not None and rows.value is not None else None)
    return found


def drift_failures(instance: dg.DagsterInstance, checks: Iterable[dg.AssetCheckKey],
                   since: float) -> dict[tuple[dg.AssetKey, str], tuple[bool, float, str]]:
    """The last evaluation after ``since`` of each (asset, day) of the drift ``checks``: (passed, when, run)."""
    wanted = set(checks)
    found: dict[tuple[dg.AssetKey, str], tuple[bool, float, str]] = {}
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_timestamp=since), ascending=True)
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.asset_check_key not in wanted or evaluation.partition is None:
            continue
        found[(evaluation.asset_key, evaluation.partition)] = (evaluation.passed, record.timestamp, record.run_id)
    return found


def due_days(targets: Sequence[RefreshTarget], lookbacks: dict[dg.AssetKey, int], fetches: dict, drifts: dict,
             now: dt.datetime, period_hours: float, in_flight: dict[str, float]) -> list[DueDay]:
    """Every (asset, day) inside its lookback that is due: never fetched, fetched longer ago than the refresh
    period, or found drifted by a check of a later run; days requested within the hour are left out."""
    stamp = now.timestamp()
    due = []
    for target in targets:
        for day in lookback_days(target, lookbacks[target.key], now):
            if stamp - in_flight.get(_flight_key(target.key, day), 0.0) < IN_FLIGHT_SECONDS:
                continue
            last = fetches.get((target.key, day))
            check = drifts.get((target.key, day))
            drifted = (check is not None and not check[0] and last is not None and check[1] > last.at
                       and check[2] != last.run_id)
            if last is None or stamp - last.at >= period_hours * 3600 or (drifted and stamp - last.at >= DRIFT_REFETCH_SECONDS):
                due.append(DueDay(target, day, last, drifted))
    return due


def plan_runs(due: Sequence[DueDay]) -> list[PlannedRun]:
    """Runs covering the due days, most urgent first: for a ranged asset one run from its first to its last due
    day (days in between cost next to nothing in a ranged request), assets sharing a range in one run; for
    other assets one run per day."""
    spans: dict[tuple[str, str], PlannedRun] = {}
    by_target: dict[dg.AssetKey, list[DueDay]] = {}
    for day in due:
        by_target.setdefault(day.target.key, []).append(day)
    for days in by_target.values():
        target = days[0].target
        groups = [days] if target.ranged else [[d] for d in days]
        for group in groups:
            start, end = min(d.day for d in group), max(d.day for d in group)
            run = spans.setdefault((start, end, target.ranged), PlannedRun(start, end, []))
            run.targets.append(target)
            run.days.extend(group)
    return sorted(spans.values(), key=lambda run: run.priority)


def _flight_key(key: dg.AssetKey, day: str) -> str:
    return f"{key.to_user_string()}|{day}"


# What a budgeted API says about a tick's plan: how many requests are left to spend, and in which budget.
Budget = Callable[[Any], tuple[float, str]]


def build_refresh_sensor(*, name: str, api: str, job: Any, targets: Sequence[RefreshTarget], resource_key: str,
                         minimum_interval_seconds: int, budget: Budget | None = None, budget_share: float = 0.8,
                         check_job: Any = None) -> dg.SensorDefinition:
    """The refresh sensor of one API instance. ``budget`` (Streamtime) gives the requests left; the sensor
    spends at most ``budget_share`` of them and says in its SkipReason what waits. ``check_job`` runs the drift
    checks alone over the lookback, four times per refresh period, so a day that changed is seen before its
    turn comes."""
    targets = list(targets)
    checks = [t.drift_check for t in targets if t.drift_check is not None]

    jobs = {"jobs": [job, check_job]} if check_job is not None else {"job": job}

    @dg.sensor(name=name, **jobs, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.STOPPED, required_resource_keys={resource_key},
               description=f"Fetches the closed days of {api} again, so that the warehouse keeps up with late, "
               "changed and deleted records: each day inside its asset's lookback once per refresh period, stale "
               "days first, as ranged runs" + (", within the budget the other runs leave" if budget else "") + ".")
    def refresh_sensor(context: dg.SensorEvaluationContext, **_resources: object):
        # (a sensor invoked directly, as in tests, also gets its resources as keywords)
        resource = getattr(context.resources, resource_key)
        now = dt.datetime.now(dt.timezone.utc)
        period = resource.refresh_period_hours()
        lookbacks = {t.key: resource.refresh_lookback(t.lookback_days) for t in targets}
        longest = max(lookbacks.values(), default=0)
        if longest <= 0:
            return dg.SkipReason(f"{api}: refresh lookback is 0 days: nothing to refresh")
        state = json.loads(context.cursor or "{}")
        in_flight = {k: t for k, t in state.get("in_flight", {}).items() if now.timestamp() - t < IN_FLIGHT_SECONDS}
        since = dt.datetime.combine(now.date() - dt.timedelta(days=longest), dt.time(), dt.timezone.utc).timestamp()
        fetches = last_fetches(context.instance, lookbacks, since)
        drifts = drift_failures(context.instance, checks, since) if checks else {}
        runs = plan_runs(due_days(targets, lookbacks, fetches, drifts, now, period, in_flight))
        rows = {key: fetch.rows or 0 for key, fetch in fetches.items()}

        check_run = None
        checked_at = state.get("checked_at", 0.0)
        if check_job is not None and now.timestamp() - checked_at >= period * 3600 / 4:
            days = sorted({d for t in targets if t.drift_check for d in lookback_days(t, lookbacks[t.key], now)})
            if days:
                check_run = dg.RunRequest(
                    run_key=f"drift-check:{days[0]}...{days[-1]}@{now:%Y%m%dT%H%M}", job_name=check_job.name,
                    tags={ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]})
        check_cost = sum(t.check_cost(len(lookback_days(t, lookbacks[t.key], now)))
                         for t in targets if t.drift_check) if check_run else 0

        chosen, waiting = runs, []
        note = ""
        if budget is not None:  # due days first; the drift check only with what they leave
            left, which = budget(resource)
            spendable = math.floor(left * budget_share)
            chosen, waiting = [], []
            for run in runs:
                price = run.cost(rows)
                if price <= spendable:
                    chosen.append(run)
                    spendable -= price
                else:
                    waiting.append(run)
            if check_run is not None and (waiting or check_cost > spendable):
                check_run = None
            note = f"; {which}: {left:.0f} requests left, {budget_share:.0%} of them for this sensor"
        requests = [run.request(now, job.name if check_job is not None else None) for run in chosen] + ([check_run] if check_run else [])
        if not requests:
            if waiting:
                days = sum(len(run.days) for run in waiting)
                return dg.SkipReason(f"{api}: {days} due day(s) in {len(waiting)} run(s) wait for budget, the most "
                                     f"urgent {waiting[0].start}...{waiting[0].end}{note}")
            return dg.SkipReason(f"{api}: every day inside the lookback ({longest} day(s) at most) was fetched within "
                                 f"the last {period:g} h")
        for run in chosen:
            for day in run.days:
                in_flight[_flight_key(day.target.key, day.day)] = now.timestamp()
        if check_run is not None:
            checked_at = now.timestamp()
        drifted = sum(1 for run in chosen for d in run.days if d.drift)
        asked = ([f"{len(chosen)} refresh run(s) covering {sum(len(r.days) for r in chosen)} due day(s) "
                  f"({drifted} drifted)"] if chosen else []) + (["a drift check over the lookback"] if check_run else [])
        context.log.info(f"{api}: requesting " + " and ".join(asked)
                         + (f"; {len(waiting)} run(s) wait for budget" if waiting else "") + note)
        return dg.SensorResult(run_requests=requests,
                               cursor=json.dumps({"in_flight": in_flight, "checked_at": checked_at}))

    return refresh_sensor


def build_refresh(tenant: Tenant, assets: Sequence[dg.AssetsDefinition], lookback_days: dict[str, int],
                  api: str) -> tuple[Any, dg.SensorDefinition]:
    """The refresh job and sensor of an API instance without budgets: ``lookback_days`` gives, per asset (table)
    name, its default lookback; daily assets not named there are not refreshed (their past cannot be asked
    again)."""
    targets = [
        RefreshTarget(asset.key, asset.partitions_def, lookback_days[asset.key.path[-1]],
                      ranged=asset.backfill_policy is not None and asset.backfill_policy.max_partitions_per_run is None)
        for asset in assets
        if isinstance(asset.partitions_def, dg.TimeWindowPartitionsDefinition) and asset.key.path[-1] in lookback_days
    ]
    job = dg.define_asset_job(tenant.named(f"{tenant.api}_refresh"),
                              selection=dg.AssetSelection.assets(*[t.key for t in targets]),
                              description=f"Fetches closed days of {api} again (the refresh sensor's runs).")
    sensor = build_refresh_sensor(name=tenant.named(f"{tenant.api}_refresh_sensor"), api=f"{api} ({tenant.group})",
                                  job=job, targets=targets, resource_key=tenant.resource_key,
                                  minimum_interval_seconds=config.sensor_seconds())
    return job, sensor
