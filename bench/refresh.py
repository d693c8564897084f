"""Benchmark: keeping Streamtime's closed days equal to the source (README, "Keeping up with the source").

Part 1, requests. A Streamtime emulator with small budgets (requests ``10/6,60/36``: the documented 60 a
minute and 720 an hour with windows 10 and 100 times shorter; processing ``5/6,30/36``), and the 14 closed
days before today of every dated entity (logged times, expenses, invoices, quotes, jobs) first materialized
once. Then the source's past changes (late records, changed values, deleted records) and the 14 days are
fetched again twice, side by side:

- *before*: as the only mechanism before the refresh sensor did, one run per day (what the budget sensor asks);
- *after*: the refresh sensor's ticks and the ranged runs they ask for, until no day is due.

Each reports the requests the emulator saw, its 429s, and the minimal number of pages for the windows asked
(per entity, ``ceil(records / 1000)`` over the 14 days), with and without one ``/search/setup`` per view.

Part 2, the sensor's tick. A Dagster instance on disk (SQLite, as `dagster dev`) holding a year of daily
partitions of the six Streamtime daily assets (runless materializations with a row count and a preview, all
recent: the worst case, since every one of them is newer than the lookback's first day). It times:

- *before*: the budget sensor's old way, one instance query per day and asset (``fetch_materializations``);
- *after*: the refresh sensor's tick (one event query, plus one for the drift checks).

    .venv/bin/python bench/refresh.py [--days 14] [--year 365] [--ticks 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import tempfile
import time
from collections import Counter

import dagster as dg

from stream_assets.core.tenants import Tenant
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamtime.assets import partitioned
from stream_assets.streamtime.definitions import build_defs
from stream_assets.streamtime.emulator import StreamtimeEmulator, pages_needed
from stream_assets.streamtime.entities import ENTITIES
from stream_assets.streamtime.resources import StreamtimeResource

KEY = "bench-refresh-key"
REQUEST_LIMITS, PROCESSING_LIMITS = "10/6,60/36", "5/6,30/36"
DATED = [e for e in ENTITIES if e.partitioned]
TODAY = dt.datetime.now(dt.timezone.utc).date()


def _definitions(emulator: StreamtimeEmulator, folder: str, days: int, refresh_hours: str) -> tuple[dg.Definitions, StreamtimeResource]:
    resource = StreamtimeResource(api_key=KEY, base_url=emulator.base_url, rate_limits=REQUEST_LIMITS,
                                  processing_limits=PROCESSING_LIMITS, refresh_lookback_days=str(days),
                                  refresh_hours=refresh_hours, data_dir=folder)
    start = (TODAY - dt.timedelta(days=400)).isoformat()
    defs = build_defs(Tenant("streamtime"), resource, start_date=start)
    return dg.Definitions.merge(defs, dg.Definitions(resources={
        "warehouse": Warehouse(database=os.path.join(folder, "warehouse.duckdb"))})), resource


def _change_the_past(emulator: StreamtimeEmulator, first: dt.date, last: dt.date) -> int:
    changes = 0
    for view in ("time", "expenses", "invoices", "quotes"):
        records = emulator.records(view, first, last)
        if len(records) < 3:
            continue
        late = dict(records[0], id=records[0]["id"] + 900_000)
        emulator.past.add(view, late)
        emulator.past.delete(view, records[1]["id"])
        field = {"time": "minutes", "expenses": "quantity", "invoices": "invoiceCurrencyTotalAmountExTax",
                 "quotes": "quoteCurrencyTotalAmountExTax"}[view]
        emulator.past.change(view, records[2]["id"], **{field: records[2][field] + 1})
        changes += 3
    return changes


def _minimal_pages(emulator: StreamtimeEmulator, first: dt.date, last: dt.date) -> int:
    total = 0
    for entity in DATED:
        wide = 1 if entity.name == "jobs" else 0  # jobs are asked a day wider (their datetime's timezone)
        total += max(1, pages_needed(len(emulator.records(entity.view, first - dt.timedelta(days=wide),
                                                          last + dt.timedelta(days=wide)))))
    return total


def part_requests(days: int) -> None:
    first, last = TODAY - dt.timedelta(days=days), TODAY - dt.timedelta(days=1)
    keys = [dg.AssetKey(["streamtime", e.name]) for e in DATED]
    results = {}
    for mode in ("before: a run per day", "after: refresh sensor, ranged runs"):
        with tempfile.TemporaryDirectory() as folder, dg.instance_for_test() as instance, StreamtimeEmulator(
                {KEY: "Bench"}, seed=8, request_limits=REQUEST_LIMITS, processing_limits=PROCESSING_LIMITS) as emulator:
            defs, resource = _definitions(emulator, folder, days, "0.0001")
            daily = defs.resolve_job_def("streamtime_daily")
            daily.execute_in_process(instance=instance, asset_selection=keys, tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat()})
            changes = _change_the_past(emulator, first, last)
            emulator.clear()
            emulator.counters.update(requests=0, throttled=0)
            started = time.monotonic()
            runs = 0
            if mode.startswith("before"):
                for n in range(days):
                    day = (first + dt.timedelta(days=n)).isoformat()
                    assert daily.execute_in_process(instance=instance, asset_selection=keys, partition_key=day).success
                    runs += 1
            else:
                time.sleep(0.5)  # past the refresh period
                sensor = next(s for s in defs.sensors if s.name == "streamtime_refresh_sensor")
                cursor = None
                deadline = time.monotonic() + 600  # bounded: a plan the budget can never afford ends here
                while time.monotonic() < deadline:
                    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                            resources={"streamtime": resource}))
                    if isinstance(result, dg.SkipReason):
                        if "wait for budget" in result.skip_message:
                            time.sleep(2)
                            continue
                        break
                    cursor = result.cursor
                    fetches = [r for r in result.run_requests if r.asset_selection]
                    for request in fetches:
                        # only the dated entities are compared here (the statistics are reports, not pages)
                        selection = [k for k in request.asset_selection if k in keys]
                        assert daily.execute_in_process(instance=instance, asset_selection=selection,
                                                        tags=request.tags, partition_key=request.partition_key).success
                        runs += 1
                    if not fetches:
                        break
            seconds = time.monotonic() - started
            searches = Counter(r.path.rsplit("/", 1)[-1] for r in emulator.requests)
            minimal = _minimal_pages(emulator, first, last)
            results[mode] = (runs, len(emulator.requests), searches, emulator.counters["throttled"], minimal, seconds,
                             changes)
    print(f"\n## Refreshing {days} closed days of the {len(DATED)} dated entities "
          f"(requests {REQUEST_LIMITS}, processing {PROCESSING_LIMITS})\n")
    print("| mode | runs | requests (setups + searches) | 429s | minimal pages | requests / minimal pages "
          "| / (pages + a setup per view) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, (runs, requests, kinds, throttled, minimal, seconds, changes) in results.items():
        setups = kinds.get("setup", 0)
        print(f"| {mode} | {runs} | {requests} ({setups} + {requests - setups}) | {throttled} | {minimal} | "
              f"{requests / minimal:.2f} × | {requests / (minimal + len(DATED)):.2f} × | {seconds:.1f} |")
    print(f"\n({changes} changes at the source per mode: a late record, a deleted one and a changed value per view.)")


def _year_of_partitions(instance: dg.DagsterInstance, keys: list[dg.AssetKey], days: int) -> None:
    preview = dg.MetadataValue.md("| id | minutes | notes |\n|---|---|---|\n" + "| 1 | 30 | some text |\n" * 10)
    for n in range(days, 0, -1):
        day = (TODAY - dt.timedelta(days=n)).isoformat()
        for key in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=key, partition=day, metadata={"dagster/row_count": 35, "preview": preview,
                                                        "fetched_at": dg.MetadataValue.timestamp(time.time())}))


def per_day_queries(instance: dg.DagsterInstance, keys: list[str], daily: list[dg.AssetsDefinition]) -> list[str]:
    """The budget sensor's way before the refresh sensor: one instance query per day and asset."""
    wanted = []
    for key in keys:
        day_end = dt.datetime.fromisoformat(key).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
        for asset in daily:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=[key]), limit=1).records
            if not records or records[0].timestamp < day_end.timestamp():
                wanted.append(key)
                break
    return wanted


def part_tick(year: int, ticks: int) -> None:
    with tempfile.TemporaryDirectory() as folder, StreamtimeEmulator({KEY: "Bench"}, seed=8) as emulator:
        home = os.path.join(folder, "dagster_home")
        os.makedirs(home)
        with dg.DagsterInstance.from_config(home) as instance:
            defs, resource = _definitions(emulator, folder, 0, "24")
            resource = StreamtimeResource(api_key=KEY, base_url=emulator.base_url, data_dir=folder)  # the lookbacks of each entity
            daily = partitioned(list(defs.assets))
            started = time.monotonic()
            _year_of_partitions(instance, [a.key for a in daily], year)
            filled = time.monotonic() - started
            sensor = next(s for s in defs.sensors if s.name == "streamtime_refresh_sensor")
            lookback = max(resource.refresh_lookback(e.refresh_lookback_days) for e in DATED)
            closed = [(TODAY - dt.timedelta(days=n)).isoformat() for n in range(lookback, 0, -1)]
            before, after = [], []
            for _ in range(ticks):
                started = time.monotonic()
                per_day_queries(instance, closed, daily)
                before.append(time.monotonic() - started)
                started = time.monotonic()
                result = sensor(dg.build_sensor_context(instance=instance, resources={"streamtime": resource}))
                after.append(time.monotonic() - started)
        print(f"\n## The sensor's tick with {year} days × {len(daily)} assets materialized "
              f"({year * len(daily)} materializations, written in {filled:.0f} s; median of {ticks} ticks)\n")
        print("| | instance queries | tick seconds (median) | max |")
        print("|---|---|---|---|")
        print(f"| before: one query per day and asset ({lookback} days) | {lookback * len(daily)} | "
              f"{statistics.median(before):.3f} | {max(before):.3f} |")
        print(f"| after: the refresh sensor | 2 | {statistics.median(after):.3f} | {max(after):.3f} |")
        print(f"\n(last tick: {type(result).__name__})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--year", type=int, default=365)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--only", choices=("requests", "tick"), default=None)
    args = parser.parse_args()
    if args.only in (None, "requests"):
        part_requests(args.days)
    if args.only in (None, "tick"):
        part_tick(args.year, args.ticks)


if __name__ == "__main__":
    main()
