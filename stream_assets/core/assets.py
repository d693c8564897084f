"""The Dagster side shared by every API's assets: partitions, windows, retries and metadata."""

from __future__ import annotations

import datetime as dt
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import dagster as dg
import pandas as pd

from stream_assets.core.config import start_date
from stream_assets.core.errors import ApiError, naming_partition
from stream_assets.core.windows import TimeWindow

# BackfillPolicy is marked beta in Dagster 1.13; we rely on it knowingly, so keep the logs quiet about it.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

TRANSIENT_RETRIES = 3


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """UTC days from ``STREAM_ASSETS_START_DATE``; today's partition exists (and refreshes) during the day."""
    return dg.DailyPartitionsDefinition(start_date=start_date(), timezone="UTC", end_offset=1)


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


def preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "_no rows_")


def table_metadata(frame: pd.DataFrame, window: TimeWindow | None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"dagster/row_count": len(frame), "preview": preview(frame)}
    if window is not None:
        metadata["window"] = str(window)
    metadata.update(extra)
    return metadata
