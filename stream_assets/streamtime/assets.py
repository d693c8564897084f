"""Streamtime assets: one per entity (daily partitions on its natural date, or a snapshot), plus daily
statistics from ``POST /report``. All of them run in the Dagster pool ``streamtime``."""


from dataclasses import dataclass
from typing import Callable

import dagster as dg
import pandas as pd

from stream_assets.core.assets import (
    PREVIEW_ROWS, api_errors, daily_partitions, partition_window, ranged_backfill_policy, table_metadata,
)
from stream_assets.core.staging import Staging, Written, rows_to_arrow
from stream_assets.core.warehouse import Table, Warehouse
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.client import EntityRows, StreamtimeClient
from stream_assets.streamtime.entities import BY_VIEW, ENTITIES, SCHEMA, Entity
from stream_assets.streamtime.report import Statistic
from stream_assets.streamtime.resources import StreamtimeResource

GROUP = POOL = "streamtime"
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
STATISTICS_TABLE = Table(SCHEMA, "daily_statistics", (("day", "DATE"), *((f.column, "DOUBLE") for f in DAILY_FIGURES)), "day",
                         key=("day",))


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


def replace_entity(client: StreamtimeClient, warehouse: Warehouse, entity: Entity,
                   window: TimeWindow | None) -> tuple[EntityRows, Written]:
    """Replace the entity's rows for ``window`` (the whole table for a snapshot): each page of the search
    is staged as one Arrow insert as it arrives (core/staging.py) and the staged rows are swapped into the
    warehouse in one transaction once the answer is provably complete. Memory is bounded by a page; a
    failure (or a kill) before the swap leaves the old rows."""
    table = entity.table
    read, pages = client.read_pages(entity, window)
    with Staging(table, api=client.api_name, endpoint=f"search?search_view={entity.view}", window=window) as staging:
        for page in pages:
            staging.append(rows_to_arrow(table, page))
        rows = warehouse.replace_staged(table, staging, window)
        return read, staging.written(rows, [table.window_column] if table.window_column else [], PREVIEW_ROWS)


def build_entity_asset(entity: Entity) -> dg.AssetsDefinition:
    partitioned = entity.partitioned
    description = (f"Streamtime {entity.name.replace('_', ' ')}"
                   + (f", by UTC day of `{entity.date_field}`" if partitioned else ", a snapshot replaced whole on each run")
                   + f" (search view `{entity.view}`). Key columns: {', '.join(entity.key_columns)}; `record` keeps "
                   "each record as it came."
                   + (f" Additional data stored: {', '.join(entity.additional)}." if entity.additional else ""))

    @dg.asset(
        key=[SCHEMA, entity.name], group_name=GROUP, pool=POOL, description=description, kinds={"duckdb", "python"},
        partitions_def=PARTITIONS if partitioned else None,
        backfill_policy=ranged_backfill_policy() if partitioned else None,
    )
    def entity_asset(context: dg.AssetExecutionContext, streamtime: StreamtimeResource,
                     warehouse: Warehouse) -> dg.MaterializeResult:
        window = partition_window(context) if partitioned else None
        client = streamtime.client(on_wait=_waits(context))
        with api_errors(context):
            read, written = replace_entity(client, warehouse, entity, window)
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
            written.preview, window, table=entity.table, rows=written.rows,
            window_values=written.columns[entity.table.window_column] if entity.table.window_column else None,
            **budget_metadata(client), **extra))

    entity_asset.__name__ = f"streamtime_{entity.name}"
    return entity_asset


entity_assets = [build_entity_asset(entity) for entity in ENTITIES]


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


@dg.asset(
    key=[SCHEMA, "daily_statistics"], group_name=GROUP, pool=POOL, partitions_def=PARTITIONS,
    backfill_policy=ranged_backfill_policy(), kinds={"duckdb", "python"},
    description="Logged minutes and entries, invoice and quote totals per day, from POST /report (per view: one "
    "/report/setup, then time-breakdown reports of up to 31 days when their buckets are proven daily, else one "
    "report per day).",
)
def streamtime_daily_statistics(context: dg.AssetExecutionContext, streamtime: StreamtimeResource,
                                warehouse: Warehouse) -> dg.MaterializeResult:
    window = partition_window(context)
    client = streamtime.client(on_wait=_waits(context))
    with api_errors(context):
        frame = daily_figures(client, window)
        warehouse.replace(STATISTICS_TABLE, frame, window)
    return dg.MaterializeResult(metadata=table_metadata(frame, window, table=STATISTICS_TABLE, **budget_metadata(client)))


assets = [*entity_assets, streamtime_daily_statistics]
daily_assets = [a for a in assets if a.partitions_def is not None]
snapshot_assets = [a for a in assets if a.partitions_def is None]
