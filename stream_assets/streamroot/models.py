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
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Point = Annotated[list[float], Len(2, 2)]  # [interval start in epoch ms, value]


class KeyedAnswer(BaseModel):
    """One element of a Streamroot answer: the Streamroot key and that key's figures."""

    model_config = ConfigDict(strict=True, populate_by_name=True, extra="ignore")

    sr_key: str = Field(validation_alias=AliasChoices("srKey", "SrKey"))

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
    platforms: list[str]
    _list_field = "platforms"
    _column = "platform"


class Streams(_Listing):
    streams: list[str]
    _list_field = "streams"
    _column = "stream"


class _Timeseries(KeyedAnswer):
    """Several series of ``[ts_ms, value]`` points; one row per timestamp, a column per series."""

    def rows(self) -> Iterator[dict[str, Any]]:
        yield from self.frame().to_dict("records")

    def frame(self) -> pd.DataFrame:
        """Columns ``sr_key``, ``ts_ms`` and one per series, outer-joined on the timestamp, sorted.

        Built from arrays rather than row by row: a month of 5-minute points is ~9,000 rows per series.
        """
        series = []
        for name in type(self).model_fields:
            if name == "sr_key":
                continue
            points = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1, 2)
            series.append(pd.Series(points[:, 1], index=pd.Index(points[:, 0].astype(np.int64), name="ts_ms"), name=name))
        frame = pd.concat(series, axis=1).sort_index().reset_index()
        frame.insert(0, "sr_key", self.sr_key)
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
