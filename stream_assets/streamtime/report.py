"""Reading ``POST /report`` answers, which have no published schema (reference/streamtime-v2.md §4.5).

What is assumed, and nothing more (the README says the same):

- the answer is a JSON object; the figures of the whole range sit in ``totals`` (the one sample the
  source shows: ``{"totals": {"count": 42}}``), or at the top level when there is no ``totals``;
- a figure is found under ``"<mode>_<column>"`` (``sum_minutes``), under ``<column>`` as an object of
  modes (``{"minutes": {"sum": 1}}``) or, for ``count`` and for a mode asked only once, under ``<mode>``;
  it is a number or null;
- with ``time_breakdown=true`` the buckets are a list under ``timeBreakdown``, ``breakdown``,
  ``buckets`` or ``periods``; each bucket names its first day (``startDate``, ``date``, ``start``,
  ``from`` or ``period``, ``YYYY-MM-DD``), optionally its last day (``endDate``, ``end``, ``to``), and
  holds its figures like the totals (in ``totals`` or in the bucket itself).

Buckets are used only when they are **proven daily**: one bucket per day of the range asked, each
starting on that day and ending on it (when an end is given). Anything else (weekly or monthly buckets,
a missing day, no bucket list) is not an error: the caller asks day by day instead. An answer whose
figures cannot be found is an error (:class:`ReportUnreadable`), never a row of zeros.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

BUCKET_LISTS = ("timeBreakdown", "breakdown", "buckets", "periods")
BUCKET_STARTS = ("startDate", "date", "start", "from", "period")
BUCKET_ENDS = ("endDate", "end", "to")


class ReportUnreadable(ValueError):
    """The answer does not hold the figures asked for in any of the assumed shapes."""


@dataclass(frozen=True)
class Statistic:
    """One figure asked of /report: ``mode`` of ``column`` (no column for ``count``)."""

    mode: str
    column: str | None = None

    def body(self) -> dict:
        return {"mode": self.mode, **({"column": self.column} if self.column else {})}


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportUnreadable(f"{where} is {type(value).__name__}, not a number")
    return float(value)


def figures(block: Any, statistics: Sequence[Statistic]) -> list[float | None]:
    """The figures of ``statistics`` in one block of figures (the totals, or one bucket)."""
    if not isinstance(block, dict):
        raise ReportUnreadable(f"expected an object of figures, got {type(block).__name__}")
    if isinstance(block.get("totals"), dict):
        block = block["totals"]
    modes = [s.mode for s in statistics]
    out = []
    for statistic in statistics:
        name = statistic.mode if statistic.column is None else f"{statistic.mode}_{statistic.column}"
        if name in block:
            out.append(_number(block[name], name))
        elif statistic.column and isinstance(block.get(statistic.column), dict) and statistic.mode in block[statistic.column]:
            out.append(_number(block[statistic.column][statistic.mode], f"{statistic.column}.{statistic.mode}"))
        elif statistic.mode in block and modes.count(statistic.mode) == 1:
            out.append(_number(block[statistic.mode], statistic.mode))
        else:
            raise ReportUnreadable(f"no figure for {name} among the keys {sorted(block)[:12]}")
    return out


def totals(answer: Any, statistics: Sequence[Statistic]) -> list[float | None]:
    """The figures of the whole range asked."""
    if not isinstance(answer, dict):
        raise ReportUnreadable(f"expected a JSON object, got {type(answer).__name__}")
    return figures(answer.get("totals", answer), statistics)


def _day(bucket: dict, keys: Sequence[str]) -> dt.date | None:
    for key in keys:
        value = bucket.get(key)
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value[:10])
            except ValueError:
                return None
    return None


def daily_buckets(answer: Any, days: Sequence[dt.date], statistics: Sequence[Statistic]) -> dict[dt.date, list[float | None]] | None:
    """The figures per day when the answer's buckets are proven daily for ``days``; else None."""
    if not isinstance(answer, dict):
        raise ReportUnreadable(f"expected a JSON object, got {type(answer).__name__}")
    buckets = next((answer[k] for k in BUCKET_LISTS if isinstance(answer.get(k), list)), None)
    if buckets is None or len(buckets) != len(days):
        return None
    by_day: dict[dt.date, list[float | None]] = {}
    for bucket in buckets:
        if not isinstance(bucket, dict):
            return None
        start, end = _day(bucket, BUCKET_STARTS), _day(bucket, BUCKET_ENDS)
        if start is None or (end is not None and end != start) or start in by_day:
            return None
        by_day[start] = figures(bucket, statistics)
    return by_day if set(by_day) == set(days) else None
