"""The warehouse follows the source's changing past: ten days materialized, then late, changed and deleted
records at the emulator; the refresh sensor's requests (its evaluation, then the runs it asks for) bring every
day inside the lookback back to the source, and leave the day outside it untouched."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Callable

import dagster as dg
import duckdb
import pytest

from stream_assets.core import refresh
from stream_assets.core.emulator import Reply
from stream_assets.core.tenants import Tenant
from stream_assets.streamapi.definitions import build_defs as streamapi_defs
from stream_assets.streamapi.emulator import DAY_MS
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets.streamone.definitions import build_defs as streamone_defs
from stream_assets.streamone.resources import StreamOneResource
from stream_assets.streamtime.definitions import build_defs as streamtime_defs
from stream_assets.streamtime.drift import DRIFT_CHECK
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets_tests.conftest import (
    STREAMAPI_KEY, STREAMAPI_SECRET, STREAMONE_APP, STREAMONE_APP_PSK, STREAMTIME_KEY,
)

TODAY = dt.datetime.now(dt.timezone.utc).date()
DAYS = [TODAY - dt.timedelta(days=n) for n in range(10, 0, -1)]  # ten closed days
LOOKBACK = 5
LATE, CHANGED, DELETED = (TODAY - dt.timedelta(days=n) for n in (2, 3, 4))  # inside the lookback
OUTSIDE = TODAY - dt.timedelta(days=8)  # materialized, but outside the lookback
RANGE = {"dagster/asset_partition_range_start": DAYS[0].isoformat(),
         "dagster/asset_partition_range_end": DAYS[-1].isoformat()}
START = (TODAY - dt.timedelta(days=40)).isoformat()
# The refresh period, in hours: so short that the ten days just fetched are already due again.
REFRESH_HOURS = "0.0001"


@dataclass
class Source:
    """One dated entity of one API: how the test changes its past and reads both sides."""

    name: str
    table: str  # schema.table in the warehouse
    day_column: str
    value_column: str  # the warehouse column of the changed field
    records: Callable[[dt.date], list[dict]]  # the emulator's records of a day, as served now
    record_value: Callable[[dict], Any]  # the changed field of a served record
    add_late: Callable[[dt.date, int], None]
    change: Callable[[dict], None]  # changes the changed field of a served record
    delete: Callable[[dict], None]


def _streamtime_source(emulator, view: str, table: str, day_column: str, column: str, field: str) -> Source:
    def add_late(day: dt.date, number: int) -> None:
        template = emulator.records(view, DAYS[0], DAYS[-1])[0]
        record = {**template, "id": 9_000_000 + number}
        for date_field in ("date", "invoiceDate", "quoteDate"):
            if date_field in record:
                record[date_field] = day.isoformat()
        emulator.past.add(view, record)

    return Source(
        view, f"streamtime.{table}", day_column, column,
        records=lambda day: emulator.records(view, day, day), record_value=lambda r: r[field], add_late=add_late,
        change=lambda r: emulator.past.change(view, r["id"], **{field: r[field] + 7}),
        delete=lambda r: emulator.past.delete(view, r["id"]))


def _streamone_source(emulator) -> Source:
    def records(day: dt.date) -> list[dict]:
        return [i for i in emulator.items() if i["datecreated"].date() == day]

    def add_late(day: dt.date, number: int) -> None:
        template = next(i for i in emulator.items() if i["datecreated"].date() in DAYS)
        created = dt.datetime.combine(day, dt.time(13, 5), dt.timezone.utc)
        emulator.past.add("items", {**template, "id": f"late{number:08d}", "datecreated": created,
                                    "dateaired": created, "title": "Uploaded late"})

    return Source(
        "items", "streamone.items", "datecreated", "title", records=records, record_value=lambda r: r["title"],
        add_late=add_late, change=lambda r: emulator.past.change("items", r["id"], title=r["title"] + " (retitled)"),
        delete=lambda r: emulator.past.delete("items", r["id"]))


def _streamapi_source(emulator) -> Source:
    collection = emulator.recordings_collection(STREAMAPI_KEY)

    def records(day: dt.date) -> list[dict]:
        start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1000)
        return emulator.recordings(STREAMAPI_KEY, start, start + DAY_MS - 1)

    def add_late(day: dt.date, number: int) -> None:
        template = next(r for d in DAYS for r in records(d))
        created = int(dt.datetime.combine(day, dt.time(9, 30), dt.timezone.utc).timestamp() * 1000)
        emulator.past.add(collection, {**template, "id": str(990_000 + number), "creation_date": str(created)})

    return Source(
        "video_recordings", "streamapi.video_recordings", "creation_date", "duration", records=records,
        record_value=lambda r: float(r["duration"]), add_late=add_late,
        change=lambda r: emulator.past.change(collection, r["id"], duration=str(int(r["duration"]) + 7)),
        delete=lambda r: emulator.past.delete(collection, r["id"]))


def warehouse_values(path, source: Source, day: dt.date) -> dict[str, Any]:
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute(f'SELECT CAST(id AS VARCHAR), "{source.value_column}" FROM {source.table} '
                            f'WHERE CAST("{source.day_column}" AS DATE) = ?', [day]).fetchall()
    return dict(rows)


def source_values(source: Source, day: dt.date) -> dict[str, Any]:
    return {str(r["id"]): source.record_value(r) for r in source.records(day)}


def run_requests(defs: dg.Definitions, sensor: dg.SensorDefinition, result, instance) -> list[dg.RunRequest]:
    """Execute every run the sensor asked for, as the daemon would launch them (in this process)."""
    requests = list(result.run_requests)
    default_job = sensor.job_name if len(sensor.targets) == 1 else None
    for request in requests:
        job = defs.resolve_job_def(request.job_name or default_job)
        outcome = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                         asset_selection=request.asset_selection, raise_on_error=True)
        assert outcome.success
    return requests


def tick(sensor: dg.SensorDefinition, resource_key: str, resource, instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={resource_key: resource})
    return sensor(context)


def _definitions(api: str, emulator, warehouse, **overrides: str) -> tuple[dg.Definitions, str]:
    tenant = Tenant(api)
    settings = dict(refresh_lookback_days=str(LOOKBACK), refresh_hours=REFRESH_HOURS)
    settings.update(overrides)
    if api == "streamtime":
        limits = {"rate_limits": "600/60,7200/3600", "processing_limits": "300/60,3000/3600"}
        limits.update({k: settings.pop(k) for k in list(settings) if k in limits})
        resource = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=emulator.base_url, **limits, **settings)
        defs = streamtime_defs(tenant, resource, start_date=START)
    elif api == "streamone":
        resource = StreamOneResource(actor_id=STREAMONE_APP, psk=STREAMONE_APP_PSK, base_url=emulator.root_url,
                                     **settings)
        defs = streamone_defs(tenant, resource, start_date=START)
    else:
        resource = StreamApiResource(key=STREAMAPI_KEY, secret=STREAMAPI_SECRET, base_url=emulator.base_url,
                                     **settings)
        defs = streamapi_defs(tenant, resource, start_date=START)
    return dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": warehouse})), tenant.resource_key


CASES = {
    "streamtime-logged_times": ("streamtime", lambda e: _streamtime_source(
        e, "time", "logged_times", "date", "minutes", "minutes")),
    "streamtime-logged_expenses": ("streamtime", lambda e: _streamtime_source(
        e, "expenses", "logged_expenses", "date", "quantity", "quantity")),
    "streamtime-invoices": ("streamtime", lambda e: _streamtime_source(
        e, "invoices", "invoices", "invoice_date", "invoice_currency_total_amount_ex_tax",
        "invoiceCurrencyTotalAmountExTax")),
    "streamone-items": ("streamone", _streamone_source),
    "streamapi-recordings": ("streamapi", _streamapi_source),
}
FIRST_JOB = {"streamtime": "streamtime_daily", "streamone": "streamone_refresh", "streamapi": "streamapi_refresh"}


@pytest.mark.parametrize("case", list(CASES))
def test_refresh_makes_the_lookback_equal_to_the_changed_source_and_leaves_older_days(
        case, request, warehouse, instance):
    api, make_source = CASES[case]
    emulator = request.getfixturevalue(api)
    defs, resource_key = _definitions(api, emulator, warehouse)
    source = make_source(emulator)
    for number, day in enumerate((CHANGED, DELETED, OUTSIDE)):  # each day the test changes holds a record
        if not source.records(day):
            source.add_late(day, 100 + number)
    defs.resolve_job_def(FIRST_JOB[api]).execute_in_process(instance=instance, tags=RANGE)
    for day in DAYS:
        assert warehouse_values(warehouse.path, source, day) == source_values(source, day), day

    # The source's past changes: a late record, a changed value, a deleted record inside the lookback; a
    # change outside it.
    before_outside = warehouse_values(warehouse.path, source, OUTSIDE)
    source.add_late(LATE, 1)
    changed = source.records(CHANGED)[0]
    source.change(changed)
    deleted = source.records(DELETED)[0]
    source.delete(deleted)
    outside = source.records(OUTSIDE)[0]
    source.change(outside)
    assert len(source.records(LATE)) == len(warehouse_values(warehouse.path, source, LATE)) + 1

    time.sleep(0.5)  # past the refresh period (REFRESH_HOURS)
    sensor = next(s for s in defs.sensors if "refresh" in s.name)
    resource = defs.resources[resource_key]
    result = tick(sensor, resource_key, resource, instance)
    requests = run_requests(defs, sensor, result, instance)
    refresh_runs = [r for r in requests if r.asset_selection]
    assert refresh_runs, result
    # one ranged run covers the whole lookback (not a run per day)
    assert all(r.partition_key is None for r in refresh_runs)
    assert {r.tags["dagster/asset_partition_range_start"] for r in refresh_runs} == {
        (TODAY - dt.timedelta(days=LOOKBACK)).isoformat()}

    for day in DAYS:
        if day >= TODAY - dt.timedelta(days=LOOKBACK):
            assert warehouse_values(warehouse.path, source, day) == source_values(source, day), day
    ours = warehouse_values(warehouse.path, source, CHANGED)
    assert ours[str(changed["id"])] != source.record_value(changed)  # the change reached the warehouse
    assert str(deleted["id"]) not in warehouse_values(warehouse.path, source, DELETED)
    assert warehouse_values(warehouse.path, source, OUTSIDE) == before_outside  # outside the lookback: untouched
    assert warehouse_values(warehouse.path, source, OUTSIDE) != source_values(source, OUTSIDE)

    # The days just refreshed are in flight: the next tick does not ask for them again.
    again = tick(sensor, resource_key, resource, instance, result.cursor)
    again_runs = [r for r in getattr(again, "run_requests", None) or [] if r.asset_selection]
    assert not again_runs


def test_the_refresh_sensor_reads_the_instance_once_and_asks_for_nothing_fresh(streamtime, warehouse, instance,
                                                                                monkeypatch):
    defs, key = _definitions("streamtime", streamtime, warehouse, refresh_hours="24")
    resource = defs.resources[key]
    defs.resolve_job_def("streamtime_daily").execute_in_process(instance=instance, tags=RANGE)
    sensor = next(s for s in defs.sensors if s.name == "streamtime_refresh_sensor")
    queries = []
    storage = type(instance.event_log_storage)
    original = storage.get_event_records
    monkeypatch.setattr(storage, "get_event_records",
                        lambda self, *a, **k: queries.append(a[0].event_type) or original(self, *a, **k))
    result = tick(sensor, key, resource, instance)
    # fresh days are not asked for; only the drift check over the lookback runs (once per quarter period)
    assert [r.job_name for r in result.run_requests] == ["streamtime_drift_check"]
    assert queries == [dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    later = tick(sensor, key, resource, instance, result.cursor)
    assert isinstance(later, dg.SkipReason) and "fetched within the last 24 h" in later.skip_message


def test_the_streamtime_refresh_spends_only_what_the_budget_leaves_and_says_what_waits(streamtime, warehouse,
                                                                                        instance):
    defs, key = _definitions("streamtime", streamtime, warehouse, rate_limits="10/3600")
    resource = defs.resources[key]
    sensor = next(s for s in defs.sensors if s.name == "streamtime_refresh_sensor")
    result = tick(sensor, key, resource, instance)  # nothing fetched yet: every lookback day is due
    assert isinstance(result, dg.SkipReason), result
    assert "wait for budget" in result.skip_message and "10 requests left" in result.skip_message


def _drift_setup(streamtime, warehouse, instance):
    defs, key = _definitions("streamtime", streamtime, warehouse, refresh_hours="24")
    resource = defs.resources[key]
    defs.resolve_job_def("streamtime_daily").execute_in_process(instance=instance, tags=RANGE)
    sensor = next(s for s in defs.sensors if s.name == "streamtime_refresh_sensor")
    late = streamtime.records("time", LATE, LATE)[0]
    streamtime.past.add("time", {**late, "id": 8_000_001})
    return defs, key, resource, sensor


def _check_evaluations(instance, asset: str) -> dict[str, bool]:
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True)
    out = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.asset_key == dg.AssetKey(["streamtime", asset]) and evaluation.partition:
            out[evaluation.partition] = evaluation.passed
    return out


def test_the_drift_check_finds_the_changed_day_and_the_sensor_fetches_it_first(streamtime, warehouse, instance,
                                                                                monkeypatch):
    defs, key, resource, sensor = _drift_setup(streamtime, warehouse, instance)
    result = tick(sensor, key, resource, instance)
    run_requests(defs, sensor, result, instance)  # the drift check over the lookback
    evaluations = _check_evaluations(instance, "logged_times")
    assert evaluations[LATE.isoformat()] is False
    assert all(passed for day, passed in evaluations.items() if day != LATE.isoformat())
    assert len(evaluations) == LOOKBACK
    assert _check_evaluations(instance, "invoices") and all(_check_evaluations(instance, "invoices").values())

    monkeypatch.setattr(refresh, "DRIFT_REFETCH_SECONDS", 0)
    fetch = tick(sensor, key, resource, instance, result.cursor)
    (run,) = fetch.run_requests  # only the drifted day, though every day was fetched within the period
    assert run.partition_key == LATE.isoformat()
    assert run.asset_selection == [dg.AssetKey(["streamtime", "logged_times"])]
    run_requests(defs, sensor, fetch, instance)
    assert len(warehouse_values(warehouse.path, _streamtime_source(
        streamtime, "time", "logged_times", "date", "minutes", "minutes"), LATE)) == len(streamtime.records("time", LATE, LATE))


def test_an_unreadable_report_is_not_compared_and_the_plain_refresh_applies(streamtime, warehouse, instance):
    defs, key, resource, sensor = _drift_setup(streamtime, warehouse, instance)
    streamtime.fail_next(Reply.json({"rows": "not figures"}), times=100, path_contains="/report")
    result = tick(sensor, key, resource, instance)
    run_requests(defs, sensor, result, instance)  # the drift check runs, and does not fail the run
    assert _check_evaluations(instance, "logged_times") == {}  # nothing compared, no day judged
    checks = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True)
    evaluation = checks[-1].event_log_entry.dagster_event.event_specific_data
    assert evaluation.passed and evaluation.metadata["compared"].value is False
    assert evaluation.check_name == DRIFT_CHECK
    later = tick(sensor, key, resource, instance, result.cursor)
    assert isinstance(later, dg.SkipReason)  # nothing is due before the refresh period
