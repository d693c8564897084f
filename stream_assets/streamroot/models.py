"""Pydantic models of the Streamroot DNA data API answers (one object per Streamroot key).

They accept the spellings the documentation shows: ``srKey`` and ``SrKey``; ``p2pAvegage`` (sic) and
``p2pAverage``. Validation is strict: a number sent as a string, or a point that is not a
``[timestamp_ms, value]`` pair, is an error rather than a silent coercion.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator

import numpy as np
import pandas as pd
from annotated_types import Len
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from stream_assets.core.validation import EARLIEST, LATEST, MAX_KEY_CHARS

Point = Annotated[list[float], Len(2, 2)]  # [interval start in epoch ms, value]
# Keys and listed names are short identifiers; a 10 MB one is refused here, before any row is built.
Name = Annotated[str, StringConstraints(max_length=MAX_KEY_CHARS)]
_EARLIEST_MS, _LATEST_MS = EARLIEST.value // 10**6, LATEST.value // 10**6


class KeyedAnswer(BaseModel):
    """One element of a Streamroot answer: the Streamroot key and that key's figures."""

    model_config = ConfigDict(strict=True, populate_by_name=True, extra="ignore")

    sr_key: Name = Field(validation_alias=AliasChoices("srKey", "SrKey"))

    def rows(self) -> Iterator[dict[str, Any]]:
        """Warehouse rows (column -> value), without the partition's day, which the asset adds."""
        yield self.model_dump()

    def frame(self) -> pd.DataFrame:
        """The same rows as a DataFrame."""
        return pd.DataFrame(list(self.rows()))


class Audience(KeyedAnswer):
    max: float
    average: float
    audience_95th: float = Field(validation_alias=AliasChoices("audience95th", "audience_95th"))


class Traffic(KeyedAnswer):
    cdn: float
    p2p: float


class Bandwidth(KeyedAnswer):
    p2p_average: float = Field(validation_alias=AliasChoices("p2pAvegage", "p2pAverage"))
    cdn_max: float = Field(validation_alias="cdnMax")
    p2p_max: float = Field(validation_alias="p2pMax")
    max: float
    p2p_95th: float = Field(validation_alias="p2p95th")


class Buffering(KeyedAnswer):
    played: float
    buffered: float


class _Listing(KeyedAnswer):
    """A list of names; one row per name."""

    _list_field: str = ""
    _column: str = ""

    def rows(self) -> Iterator[dict[str, Any]]:
        for value in getattr(self, self._list_field):
            yield {"sr_key": self.sr_key, self._column: value}


class Platforms(_Listing):
    platforms: list[Name]
    _list_field = "platforms"
    _column = "platform"


class Streams(_Listing):
    streams: list[Name]
    _list_field = "streams"
    _column = "stream"


class _Timeseries(KeyedAnswer):
    """Several series of ``[ts_ms, value]`` points; one row per timestamp, a column per series."""

    @model_validator(mode="after")
    def _points_are_sane(self) -> "_Timeseries":
        """Timestamps finite, whole and within 1970..2200; values finite; a timestamp repeated within a
        series only as an identical copy (dropped), never with two values."""
        for name in self._series_names():
            points = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1, 2)
            stamps, values = points[:, 0], points[:, 1]
            bad = ~np.isfinite(stamps) | (stamps < _EARLIEST_MS) | (stamps >= _LATEST_MS) | (stamps != np.floor(stamps))
            if bad.any():
                raise ValueError(f"{name}: timestamp {stamps[bad][0]!r} is not epoch milliseconds within "
                                 f"{EARLIEST.date()}..{LATEST.date()}")
            if not np.isfinite(values).all():
                raise ValueError(f"{name}: value {values[~np.isfinite(values)][0]!r} is not finite")
            unique_stamps = np.unique(stamps)
            if len(unique_stamps) != len(stamps):
                unique_points = np.unique(points, axis=0)
                if len(unique_points) != len(unique_stamps):
                    raise ValueError(f"{name}: a timestamp appears twice with different values")
                object.__setattr__(self, name, unique_points.tolist())
        return self

    @classmethod
    def _series_names(cls) -> list[str]:
        return [name for name in cls.model_fields if name != "sr_key"]

    def rows(self) -> Iterator[dict[str, Any]]:
        yield from self.frame().to_dict("records")

    def frame(self) -> pd.DataFrame:
        """Columns ``sr_key``, ``ts_ms`` and one per series, outer-joined on the timestamp, sorted.

        Built from arrays rather than row by row: a month of 5-minute points is ~9,000 rows per series.
        """
        series = []
        for name in self._series_names():
            points = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1, 2)
            series.append(pd.Series(points[:, 1], index=pd.Index(points[:, 0].astype(np.int64), name="ts_ms"), name=name))
        frame = pd.concat(series, axis=1).sort_index().reset_index()
        # One reference to the key per row (an object array), not one copy per row: inserting the scalar
        # copied it into every row, and a 10 MB key became gigabytes.
        # (np.full would too: it goes through a fixed-width unicode array and makes a str per row.)
        frame.insert(0, "sr_key", pd.Series([self.sr_key] * len(frame), dtype=object))
        return frame


class AudienceSeries(_Timeseries):
    audience: list[Point]


class TrafficSeries(_Timeseries):
    cdn: list[Point]
    p2p: list[Point]


class BandwidthSeries(_Timeseries):
    cdn: list[Point]
    p2p: list[Point]


class BufferingSeries(_Timeseries):
    played: list[Point]
    buffered: list[Point]
