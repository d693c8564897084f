"""Time windows (half-open, UTC) and their translations into API request parameters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A naive datetime is taken to be UTC; an aware one is converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_epoch_ms(value: dt.datetime) -> int:
    return int(round(as_utc(value).timestamp() * 1000))


def from_epoch_ms(value: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, tz=UTC)


def floor_datetime(value: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """Floor to a multiple of ``step`` counted from the Unix epoch (how the APIs align buckets)."""
    ms = to_epoch_ms(value)
    step_ms = int(step.total_seconds() * 1000)
    return from_epoch_ms(ms - ms % step_ms)


@dataclass(frozen=True)
class TimeWindow:
    """``[start, end)`` in UTC: a partition, or a range of partitions in a backfill run."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"empty time window: {self.start.isoformat()} .. {self.end.isoformat()}")

    @classmethod
    def for_days(cls, first: dt.date | str, last: dt.date | str | None = None) -> "TimeWindow":
        """The whole UTC days ``first`` .. ``last`` (inclusive; one day when ``last`` is omitted)."""
        first = dt.date.fromisoformat(first) if isinstance(first, str) else first
        last = first if last is None else (dt.date.fromisoformat(last) if isinstance(last, str) else last)
        start = dt.datetime.combine(first, dt.time(), UTC)
        return cls(start, dt.datetime.combine(last, dt.time(), UTC) + DAY)

    @property
    def start_ms(self) -> int:
        return to_epoch_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_epoch_ms(self.end)

    @property
    def first_day(self) -> dt.date:
        return self.start.date()

    @property
    def last_day(self) -> dt.date:
        """The last day touched by the window (the end itself is excluded)."""
        return (self.end - dt.timedelta(microseconds=1)).date()

    def days(self) -> Iterator["TimeWindow"]:
        """The window cut at UTC midnights, in order (partial first/last days stay partial)."""
        cursor = self.start
        while cursor < self.end:
            next_midnight = dt.datetime.combine(cursor.date(), dt.time(), UTC) + DAY
            yield TimeWindow(cursor, min(next_midnight, self.end))
            cursor = next_midnight

    def chunks(self, size: dt.timedelta) -> Iterator["TimeWindow"]:
        """Consecutive windows of at most ``size`` covering this one (for APIs with a maximum span)."""
        cursor = self.start
        while cursor < self.end:
            yield TimeWindow(cursor, min(cursor + size, self.end))
            cursor += size

    def clipped_to(self, moment: dt.datetime) -> "TimeWindow | None":
        """This window ending no later than ``moment``; None when it starts at or after it."""
        moment = as_utc(moment)
        if moment <= self.start:
            return None
        return TimeWindow(self.start, min(self.end, moment))

    def __str__(self) -> str:
        if self.start.time() == dt.time() and self.end.time() == dt.time():
            if self.end - self.start == DAY:
                return self.first_day.isoformat()
            return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"
