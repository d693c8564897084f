"""Streamtime assets: one per entity (daily partitions on its natural date, or a snapshot), plus daily
statistics from ``POST /report``. All of them run in the Dagster pool ``streamtime``."""


from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dagster as dg
import pandas as pd

from stream_assets.core.assets import (
    DAILY_FRESHNESS, PREVIEW_ROWS, api_errors, api_resource, current_run_id, daily_partitions, partition_window,
    ranged_backfill_policy, table_definition, table_metadata,
)
from stream_assets.core.staging import Staging, Written, rows_to_arrow
from stream_assets.core.tenants import Tenant
from stream_assets.core.warehouse import Table, Warehouse
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.client import EntityRows, StreamtimeClient
from stream_assets.streamtime.entities import BY_NAME, BY_VIEW, COLUMN_DESCRIPTIONS, ENTITIES, SCHEMA, Entity
from stream_assets.streamtime.report import Statistic

DEFAULT = Tenant("streamtime")
GROUP = POOL = DEFAULT.group
PARTITIONS = daily_partitions()


@dataclass(frozen=True)
class DailyFigure:
    """A column of ``daily_statistics``: ``mode`` of a report column of ``view`` (the first of ``columns``
    that ``/report/setup`` offers), per day of the view's own date field."""

    column: str
    view: str
    mode: str
    columns: tuple[str, ...] = ()


DAILY_FIGURES = (
    DailyFigure("logged_minutes", "time", "sum", ("logged_time_minutes", "minutes")),
    DailyFigure("logged_time_entries", "time", "count"),
    DailyFigure("invoice_total_ex_tax", "invoices", "sum", ("invoice_currency_total_amount_ex_tax",)),
    DailyFigure("invoices", "invoices", "count"),
    DailyFigure("quote_total_ex_tax", "quotes", "sum", ("quote_currency_total_amount_ex_tax",)),
)
STATISTICS_VIEWS = tuple(dict.fromkeys(f.view for f in DAILY_FIGURES))
STATISTICS_LOOKBACK_DAYS = 35  # the figures of invoices and quotes, which change until the month is closed
STATISTICS_TABLE = Table(SCHEMA, "daily_statistics", (("day", "DATE"), *((f.column, "DOUBLE") for f in DAILY_FIGURES)), "day",
                         key=("day",))
STATISTICS_DESCRIPTIONS = {
    "day": "The UTC day the figures are for (the report's date field)",
    "logged_minutes": "Sum of the day's logged time minutes (POST /report on `time`)",
    "logged_time_entries": "Number of the day's logged time entries",
    "invoice_total_ex_tax": "Sum of the day's invoice totals, ex tax, in invoice currency",
    "invoices": "Number of invoices dated that day",
    "quote_total_ex_tax": "Sum of the day's quote totals, ex tax, in quote currency",
}


def budget_metadata(client: StreamtimeClient) -> dict:
    return {
        "requests": client.requests_made,
        "seconds_waited_for_budget": round(client.limiter.seconds_waited, 3) if client.limiter else 0.0,
        "budget_left": dg.MetadataValue.json({k: round(v, 2) for k, v in client.limiter.remaining().items()}) if client.limiter else None,
        "throttled_429": client.throttled,
    }


# A wait this long stalls the run visibly: it is logged as a warning, so that quiet consoles (the demo's, a
# WARNING-level logger) say why nothing moves; shorter waits are routine and logged as info.
LONG_WAIT_SECONDS = 10.0


def _waits(context: dg.AssetExecutionContext) -> Callable[[float, str], None]:
    def log(seconds: float, budget: str) -> None:
        message = f"waiting ~{seconds:.1f}s for Streamtime budget ({budget})"
        if seconds >= LONG_WAIT_SECONDS:
            context.log.warning(f"{message}: the organisation's limits leave no room before then")
        else:
            context.log.info(message)
    return log


def replace_entity(client: StreamtimeClient, warehouse: Warehouse, entity: Entity, window: TimeWindow | None, *,
                   table: Table | None = None, staging_directory: Path | None = None) -> tuple[EntityRows, Written]:
    """Replace the entity's rows for ``window`` (the whole table for a snapshot) in ``table`` (default: the
    entity's table in the default schema): each page of the search is staged as one Arrow insert as it
    arrives (core/staging.py, in ``staging_directory``) and the staged rows are swapped into the warehouse
    in one transaction once the answer is provably complete. Memory is bounded by a page; a failure (or a
    kill) before the swap leaves the old rows."""
    table = table or entity.table
    read, pages = client.read_pages(entity, window)
    with Staging(table, api=client.api_name, endpoint=f"search?search_view={entity.view}", window=window,
                 directory=staging_directory) as staging:
        for page in pages:
            staging.append(rows_to_arrow(table, page))
        rows = warehouse.replace_staged(table, staging, window)
        return read, staging.written(rows, [table.window_column] if table.window_column else [], PREVIEW_ROWS)


def build_entity_asset(entity: Entity, tenant: Tenant = DEFAULT,
                       partitions: dg.PartitionsDefinition | None = None) -> dg.AssetsDefinition:
    partitioned = entity.partitioned
    table = entity.table.in_schema(tenant.schema)
    description = (f"Streamtime {entity.name.replace('_', ' ')}"
                   + (f", by UTC day of `{entity.date_field}`" if partitioned else ", a snapshot replaced whole on each run")
                   + f" (search view `{entity.view}`). Key columns: {', '.join(entity.key_columns)}; `record` keeps "
                   "each record as it came."
                   + (f" Additional data stored: {', '.join(entity.additional)}." if entity.additional else ""))

    @dg.asset(
        key=[tenant.prefix, entity.name], group_name=tenant.group, pool=tenant.pool, description=description,
        kinds={"duckdb", "python"}, partitions_def=(partitions or PARTITIONS) if partitioned else None,
        freshness_policy=DAILY_FRESHNESS if partitioned else None,
        backfill_policy=ranged_backfill_policy() if partitioned else None,
        required_resource_keys={tenant.resource_key, "warehouse"},
        metadata=table_definition(table, COLUMN_DESCRIPTIONS),
    )
    def entity_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        streamtime = api_resource(context, tenant)
        window = partition_window(context) if partitioned else None
        client = streamtime.client(on_wait=_waits(context), run_id=current_run_id(context))
        with api_errors(context):
            read, written = replace_entity(client, context.resources.warehouse, entity, window, table=table,
                                           staging_directory=streamtime.staging_directory())
        if read.fields_not_understood:
            context.log.warning(f"fields not understood (stored as NULL): {dict(read.fields_not_understood)}")
        if read.additional_data_unavailable:
            context.log.warning(f"view {entity.view} offers no additional data {read.additional_data_unavailable}: "
                                "their columns stay NULL")
        extra = {"fields_not_understood": dg.MetadataValue.json(dict(read.fields_not_understood)),
                 **({"date_selector": read.date_selector} if read.date_selector else {}),
                 **({"additional_data_unavailable": dg.MetadataValue.json(read.additional_data_unavailable)}
                    if read.additional_data_unavailable else {})}
        return dg.MaterializeResult(metadata=table_metadata(
            written.preview, window, table=table, rows=written.rows,
            window_values=written.columns[table.window_column] if table.window_column else None,
            **budget_metadata(client), **extra))

    entity_asset.__name__ = f"{tenant.prefix}_{entity.name}"
    return entity_asset


def daily_figures(client: StreamtimeClient, window) -> pd.DataFrame:
    """One row per day of the window: one /report setup and, per chunk of days, one report per view."""
    days = pd.date_range(window.first_day, window.last_day, freq="D").date
    frame = pd.DataFrame({"day": days})
    for view in STATISTICS_VIEWS:
        figures = [f for f in DAILY_FIGURES if f.view == view]
        date_field = client.report_date_field(view, BY_VIEW[view].date_selectors)
        statistics = [Statistic(f.mode, client.report_column(view, f.columns) if f.columns else None) for f in figures]
        by_day = client.daily_report(view, statistics, window, date_field)
        for position, figure in enumerate(figures):
            frame[figure.column] = [by_day[day][position] for day in days]
    return frame


def build_statistics_asset(tenant: Tenant = DEFAULT,
                           partitions: dg.PartitionsDefinition | None = None) -> dg.AssetsDefinition:
    table = STATISTICS_TABLE.in_schema(tenant.schema)

    @dg.asset(
        key=[tenant.prefix, "daily_statistics"], group_name=tenant.group, pool=tenant.pool,
        partitions_def=partitions or PARTITIONS, backfill_policy=ranged_backfill_policy(), freshness_policy=DAILY_FRESHNESS, kinds={"duckdb", "python"},
        required_resource_keys={tenant.resource_key, "warehouse"},
        metadata=table_definition(table, STATISTICS_DESCRIPTIONS),
        description="Logged minutes and entries, invoice and quote totals per day, from POST /report (per view: one "
        "/report/setup, then time-breakdown reports of up to 31 days when their buckets are proven daily, else one "
        "report per day).",
    )
    def daily_statistics(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        window = partition_window(context)
        client = api_resource(context, tenant).client(on_wait=_waits(context), run_id=current_run_id(context))
        with api_errors(context):
            frame = daily_figures(client, window)
            context.resources.warehouse.replace(table, frame, window)
        return dg.MaterializeResult(metadata=table_metadata(frame, window, table=table, **budget_metadata(client)))

    daily_statistics.__name__ = f"{tenant.prefix}_daily_statistics"
    return daily_statistics


def build_assets(tenant: Tenant = DEFAULT, start_date: str | None = None) -> list[dg.AssetsDefinition]:
    """Every Streamtime asset of one instance: one per entity, and the daily statistics."""
    partitions = daily_partitions(start_date) if start_date else PARTITIONS
    return [*(build_entity_asset(entity, tenant, partitions) for entity in ENTITIES),
            build_statistics_asset(tenant, partitions)]


def build_checks(tenant: Tenant, assets: list[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """The drift check (streamtime/drift.py) of every daily entity whose view has a report."""
    from stream_assets.streamtime.drift import DRIFT_FIGURES, build_drift_check

    daily = {a.key.path[-1]: a for a in partitioned(assets)}
    return [build_drift_check(BY_NAME[name], tenant, daily[name].partitions_def)
            for name in DRIFT_FIGURES if name in daily]


def partitioned(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    return [a for a in assets if a.partitions_def is not None]


def snapshots(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    return [a for a in assets if a.partitions_def is None]


# The default instance, for scripts and tests (the code location builds its own through components.py).
assets = build_assets()
entity_assets = assets[:-1]
streamtime_daily_statistics = assets[-1]
daily_assets = partitioned(assets)
snapshot_assets = snapshots(assets)
