"""Cheap drift detection: do the warehouse's days still match Streamtime's own ``/report``?

One report per view answers, for up to a month of days, how many records each day holds and what their
amounts sum to (client.daily_report: daily time-breakdown buckets where they are proven daily). The check
compares those figures with the same aggregates of the warehouse's rows, per day, and reports each day as a
partition of the check (WARN, never blocking). The refresh sensor fetches days found drifted first.

Where the report cannot be read (an answer in none of the assumed shapes, a view without statistics, a refused
request), nothing is compared: the check passes saying so, and the plain refresh period still applies.
"""


import datetime as dt
import math
from dataclasses import dataclass

import dagster as dg
import duckdb

from stream_assets.core.assets import api_resource, partition_label
from stream_assets.core.errors import ApiError, naming_partition
from stream_assets.core.tenants import Tenant
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.entities import Entity
from stream_assets.streamtime.report import Statistic

DRIFT_CHECK = "matches_source_report"
SUM_TOLERANCE = 0.01  # amounts are compared to the cent (reports may round)


@dataclass(frozen=True)
class DriftFigure:
    """One figure of a day: ``aggregate`` (SQL over the entity's table) against ``mode`` of the first of
    ``columns`` that the view's ``/report/setup`` offers."""

    name: str
    aggregate: str
    mode: str
    columns: tuple[str, ...] = ()


# Entities whose view has a report, and the figures compared (data, like the entities).
DRIFT_FIGURES: dict[str, tuple[DriftFigure, ...]] = {
    "logged_times": (DriftFigure("records", "count(*)", "count"),
                     DriftFigure("minutes", "sum(minutes)", "sum", ("logged_time_minutes", "minutes"))),
    "logged_expenses": (DriftFigure("records", "count(*)", "count"),
                        DriftFigure("total_ex_tax", "sum(job_currency_total_ex_tax)", "sum",
                                    ("logged_expense_total_ex_tax",))),
    "invoices": (DriftFigure("records", "count(*)", "count"),
                 DriftFigure("total_ex_tax", "sum(invoice_currency_total_amount_ex_tax)", "sum",
                             ("invoice_currency_total_amount_ex_tax",))),
    "quotes": (DriftFigure("records", "count(*)", "count"),
               DriftFigure("total_ex_tax", "sum(quote_currency_total_amount_ex_tax)", "sum",
                           ("quote_currency_total_amount_ex_tax",))),
}


def differences(figures: tuple[DriftFigure, ...], source: list[float | None],
                warehouse: list[float | None]) -> list[str]:
    """What differs between one day's figures at the source and in the warehouse (empty: they match)."""
    out = []
    for figure, theirs, ours in zip(figures, source, warehouse):
        theirs, ours = float(theirs or 0), float(ours or 0)
        if not math.isclose(theirs, ours, abs_tol=SUM_TOLERANCE if figure.mode != "count" else 0.0):
            out.append(f"{figure.name}: source {theirs:g}, warehouse {ours:g}")
    return out


def check_window(context: dg.AssetCheckExecutionContext, partitions: dg.TimeWindowPartitionsDefinition) -> tuple[TimeWindow, list[str]]:
    keys = context.partition_key_range
    first = partitions.time_window_for_partition_key(keys.start)
    last = partitions.time_window_for_partition_key(keys.end)
    days = partitions.get_partition_keys_in_range(keys)
    return TimeWindow(first.start, last.end), list(days)


def build_drift_check(entity: Entity, tenant: Tenant,
                      partitions: dg.TimeWindowPartitionsDefinition) -> dg.AssetChecksDefinition:
    figures = DRIFT_FIGURES[entity.name]
    table = entity.table.in_schema(tenant.schema)
    asset_key = dg.AssetKey([tenant.prefix, entity.name])
    column = table.window_column

    @dg.asset_check(
        asset=asset_key, name=DRIFT_CHECK, partitions_def=partitions, blocking=False, pool=tenant.pool,
        required_resource_keys={tenant.resource_key, "warehouse"},
        description=f"Each day's records and amounts match Streamtime's own report (POST /report on view "
        f"`{entity.view}`: {', '.join(f.name for f in figures)}). WARN: a day that differs changed at the source "
        "after it was fetched, and the refresh sensor fetches it first. Never blocks; passes without comparing "
        "where the report cannot be read.",
    )
    def drift_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        window, days = check_window(context, partitions)
        client = api_resource(context, tenant).client()
        try:
            with naming_partition(partition_label(context.op_execution_context)):
                date_field = client.report_date_field(entity.view, entity.date_selectors)
                statistics = [Statistic(f.mode, client.report_column(entity.view, f.columns) if f.columns else None)
                              for f in figures]
                source = client.daily_report(entity.view, statistics, window, date_field)
        except ApiError as error:
            context.log.warning(f"drift check of {asset_key.to_user_string()} skipped: {error}")
            return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                       description="Not compared: the report could not be read; the plain refresh "
                                       "period applies.",
                                       metadata={"compared": False, "reason": str(error)[:500],
                                                 "requests": client.requests_made})
        warehouse = {day: [0.0] * len(figures) for day in days}
        aggregates = ", ".join(f"{f.aggregate} AS f{n}" for n, f in enumerate(figures))
        try:
            found = context.resources.warehouse.query(
                f'SELECT CAST("{column}" AS DATE)::VARCHAR AS day, {aggregates} FROM {table.qualified} '
                f'WHERE "{column}" >= ? AND "{column}" < ? GROUP BY 1',
                [window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)])
        except duckdb.CatalogException:  # no table yet: nothing fetched, so every record at the source is missing
            found = None
        for row in (found.itertuples(index=False) if found is not None else ()):
            if row.day in warehouse:
                warehouse[row.day] = [getattr(row, f"f{n}") for n in range(len(figures))]
        drifted = {day: diff for day in days
                   if (diff := differences(figures, source.get(dt.date.fromisoformat(day), []) or [0] * len(figures),
                                           warehouse[day]))}
        if len(days) > 1:  # a ranged run: one evaluation per day, each the partition it is about
            for day in days:
                context.op_execution_context.log_event(dg.AssetCheckEvaluation(
                    asset_key=asset_key, check_name=DRIFT_CHECK, passed=day not in drifted,
                    severity=dg.AssetCheckSeverity.WARN, partition=day,
                    metadata={"differences": dg.MetadataValue.json(drifted.get(day, []))},
                    description="Differs from the source's report" if day in drifted else "Matches the source's report"))
        if drifted:
            context.log.warning(f"{asset_key.to_user_string()}: {len(drifted)} day(s) differ from the source's "
                                f"report: {dict(list(drifted.items())[:5])}")
        return dg.AssetCheckResult(
            passed=not drifted, severity=dg.AssetCheckSeverity.WARN,
            description=(f"{len(drifted)} of {len(days)} day(s) differ from the source's report" if drifted
                         else f"{len(days)} day(s) match the source's report"),
            metadata={"compared": True, "days_compared": len(days), "days_drifted": len(drifted),
                      "differences": dg.MetadataValue.json(drifted), "requests": client.requests_made})

    drift_check.__name__ = f"{tenant.prefix}_{entity.name}_{DRIFT_CHECK}"
    return drift_check
