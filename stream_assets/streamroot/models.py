"""Pydantic models of the Streamroot DNA data API answers (one object per Streamroot key).

They accept the spellings the documentation shows: ``srKey`` and ``SrKey``; ``p2pAvegage`` (sic) and
``p2pAverage``. Validation is strict: a number sent as a string, or a point that is not a
``[timestamp_ms, value]`` pair, is an error rather than a silent coercion.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator

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
        by_ts: dict[int, dict[str, Any]] = {}
        for name in type(self).model_fields:
            if name == "sr_key":
                continue
            for ts, value in getattr(self, name):
                row = by_ts.setdefault(int(ts), {"sr_key": self.sr_key, "ts_ms": int(ts)})
                row[name] = value
        for ts in sorted(by_ts):
            yield by_ts[ts]


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
