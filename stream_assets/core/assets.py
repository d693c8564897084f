"""The Dagster side shared by every API's assets: partitions, windows, retries and metadata."""

from __future__ import annotations

import datetime as dt
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import dagster as dg
import pandas as pd
from dagster._core.errors import DagsterInvalidPropertyError

from stream_assets.core.config import start_date
from stream_assets.core.errors import ApiError, naming_partition
from stream_assets.core.tenants import Tenant
from stream_assets.core.warehouse import Table
from stream_assets.core.windows import TimeWindow

# BackfillPolicy is marked beta in Dagster 1.13; we rely on it knowingly, so keep the logs quiet about it.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

TRANSIENT_RETRIES = 3


def daily_partitions(start: str | None = None) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start`` (an instance's start date; without it ``STREAM_ASSETS_START_DATE``, for the
    module-level default objects); today's partition exists (and refreshes) during the day."""
    return dg.DailyPartitionsDefinition(start_date=start or start_date(), timezone="UTC", end_offset=1)


def api_resource(context: dg.AssetExecutionContext | dg.SensorEvaluationContext, tenant: Tenant) -> Any:
    """The API resource of ``tenant``'s instance (resource key ``streamtime``, ``streamtime_acme``, ...)."""
    return getattr(context.resources, tenant.resource_key)


def current_run_id(context: dg.AssetExecutionContext) -> str | None:
    """The run's id, or None for an asset invoked directly (a test calling the function)."""
    try:
        return context.run.run_id
    except DagsterInvalidPropertyError:
        return None


def table_definition(table: Table, descriptions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Standard table metadata of an asset: ``dagster/table_name`` and ``dagster/column_schema``, with a
    description for each column the API documents."""
    descriptions = descriptions or {}
    return {
        "dagster/table_name": f"{table.schema}.{table.name}",
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(name, kind.lower(), description=descriptions.get(name)) for name, kind in table.columns]),
    }


# A daily asset is expected to have been materialized (yesterday's partition by the daily schedule, or a
# refresh) within two days; a warning after 30 hours. Evaluated by Dagster once dagster.yaml has
# `freshness: enabled: true` (README, "Keeping up with the source").
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=48), warn_window=dt.timedelta(hours=30))


def ranged_backfill_policy() -> dg.BackfillPolicy:
    """A date-range backfill is one run over the whole range: the clients then ask for the range in as
    few requests as each API allows (and `dagster asset materialize --partition-range` works)."""
    return dg.BackfillPolicy.single_run()


def closed_day(context: dg.ScheduleEvaluationContext) -> str:
    """The partition key of the UTC day before the schedule's tick: the day that has just closed."""
    return (context.scheduled_execution_time.astimezone(dt.timezone.utc) - dt.timedelta(days=1)).date().isoformat()


def partition_window(context: dg.AssetExecutionContext) -> TimeWindow:
    """The run's time window: one partition, or the whole range of a ranged backfill run."""
    window = context.partition_time_window
    return TimeWindow(window.start, window.end)


def partition_label(context: dg.AssetExecutionContext) -> str | None:
    """The partition (or ``first...last`` range) of the run, or None for unpartitioned assets."""
    if context.has_partition_key:
        return context.partition_key
    if not context.has_partition_key_range:
        return None
    keys = context.partition_key_range
    return keys.start if keys.start == keys.end else f"{keys.start}...{keys.end}"


@contextmanager
def api_errors(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Name the partition in API errors, and ask Dagster to retry the step when the API was unreachable,
    kept answering 5xx or throttled (bad answers and refused requests are not retried: they would fail
    the same way again)."""
    try:
        with naming_partition(partition_label(context)):
            yield
    except ApiError as error:
        if not error.transient:
            raise
        context.log.warning(f"{error}; asking Dagster to retry the step")
        raise dg.RetryRequested(max_retries=TRANSIENT_RETRIES, seconds_to_wait=30) from error


PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 60
# Counters of a whole run: in a ranged run they cannot be split by partition, so they get an `_in_run` name.
RUN_COUNTERS = ("requests", "http_seconds", "seconds_waited_for_budget", "throttled_429")


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS, cell_chars: int = PREVIEW_CELL_CHARS, *,
            total: int | None = None) -> dg.MetadataValue:
    """The first ``rows`` rows as a markdown table, each cell cut to ``cell_chars`` characters, so that a wide
    or long text column cannot blow up the event log. ``total`` is the number of rows ``frame`` is the
    head of (default: its length)."""
    total = len(frame) if total is None else total
    if not len(frame):
        return dg.MetadataValue.md("_no rows_")

    def cut(value: Any) -> str:
        text = str(value).replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= cell_chars else text[: cell_chars - 1] + "…"

    head = frame.head(rows).astype(object).map(cut)
    head.columns = [cut(column) for column in head.columns]
    note = f"\n\n_first {min(rows, len(frame))} of {total} rows_" if total > min(rows, len(frame)) else ""
    return dg.MetadataValue.md(head.to_markdown(index=False) + note)


def _current_context() -> dg.AssetExecutionContext | None:
    try:
        return dg.AssetExecutionContext.get()
    except dg.DagsterInvariantViolationError:  # called outside an asset execution (a test of the helper, a script)
        return None


def _partition_column(frame: pd.DataFrame, window: TimeWindow, table: Table | None) -> str | None:
    """The column placing a row in a partition: the table's window column, else the one date/time column
    whose values all fall inside the run's window (None when there is no such single column)."""
    if table is not None:
        return table.window_column
    candidates = []
    for column in frame.columns:
        values = frame[column].dropna()
        if values.empty or not (pd.api.types.is_datetime64_any_dtype(values)
                                or all(isinstance(v, (dt.date, dt.datetime)) for v in values.head(20))):
            continue
        times = _utc(values)
        if ((times >= window.start) & (times < window.end)).all():
            candidates.append(column)
    return candidates[0] if len(candidates) == 1 else None


def _utc(values: pd.Series) -> pd.Series:
    times = pd.to_datetime(values)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def _rows_per_partition(context: dg.AssetExecutionContext,
                        values: pd.Series) -> dict[str, tuple[TimeWindow, int]]:
    partitions_def = context.assets_def.partitions_def
    times = _utc(values) if len(values) else pd.Series([], dtype="datetime64[ns, UTC]")
    counts = {}
    for key in context.partition_keys:
        span = partitions_def.time_window_for_partition_key(key)
        counts[key] = (TimeWindow(span.start, span.end), int(((times >= span.start) & (times < span.end)).sum()))
    return counts


def table_metadata(frame: pd.DataFrame, window: TimeWindow | None, *, table: Table | None = None,
                   rows: int | None = None, window_values: pd.Series | None = None, **extra: Any) -> dict[str, Any]:
    """The metadata of a materialization: row count, the run's counters (``extra``), window and a preview.

    ``frame`` holds the rows written, or (for answers streamed through staging) only their first rows, for
    the preview: then ``rows`` gives the number written and ``window_values`` the table's window column of
    every row written (one column, for the per-partition counts of a ranged run).

    A ranged (single-run backfill) run materializes every partition of its range with the metadata
    returned here, so run totals there get names that say so (``rows_in_run``, ``requests_in_run``, ...),
    and each partition gets its own ``dagster/row_count`` and ``window`` through
    ``context.add_asset_metadata(partition_key=...)`` (rows placed by the table's window column). When
    that column is unknown, ranged runs carry no ``dagster/row_count`` rather than a wrong one.
    """
    context = _current_context() if window is not None else None
    ranged = (context is not None and context.has_partition_key_range
              and context.partition_key_range.start != context.partition_key_range.end)
    total = len(frame) if rows is None else rows
    # When the rows were read from the source: the refresh sensor and the UI tell a stale day by it.
    fetched_at = dg.MetadataValue.timestamp(dt.datetime.now(dt.timezone.utc))
    metadata: dict[str, Any] = {"preview": preview(frame, total=total), "fetched_at": fetched_at}
    if not ranged:
        metadata["dagster/row_count"] = total
        if window is not None:
            metadata["window"] = str(window)
        metadata.update(extra)
        return metadata
    keys = context.partition_keys
    metadata.update(rows_in_run=total, partitions_in_run=len(keys), run_window=str(window))
    for name, value in extra.items():
        metadata[f"{name}_in_run" if name in RUN_COUNTERS else name] = value
    column = _partition_column(frame, window, table)
    if column is not None and isinstance(context.assets_def.partitions_def, dg.TimeWindowPartitionsDefinition):
        values = window_values if window_values is not None else frame[column]
        for key, (span, count) in _rows_per_partition(context, values).items():
            context.add_asset_metadata({"dagster/row_count": count, "window": str(span), "fetched_at": fetched_at},
                                       partition_key=key)
    else:
        for key in keys:
            context.add_asset_metadata({"fetched_at": fetched_at}, partition_key=key)
    return metadata
