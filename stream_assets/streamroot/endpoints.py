"""The ten DNA data endpoints as data: path, answer model and warehouse table (the contract's columns).

Adding an endpoint means adding a row here; client, emulator, assets and tests all iterate this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from stream_assets.core.warehouse import Table
from stream_assets.streamroot import models

SCHEMA = "streamroot"


@dataclass(frozen=True)
class Endpoint:
    name: str  # asset/table name
    path: str  # appended to {base}/v3/customers/{customer}/
    model: type[models.KeyedAnswer]
    columns: tuple[tuple[str, str], ...]  # besides sr_key and the time column
    description: str

    @property
    def is_timeseries(self) -> bool:
        return self.path.endswith("/timeseries")

    @property
    def table(self) -> Table:
        """Keyed by Streamroot key and time (plus the name for the listings); every figure is non-negative."""
        time_column = ("ts", "TIMESTAMP") if self.is_timeseries else ("day", "DATE")
        names = tuple(c for c, kind in self.columns if kind == "VARCHAR")
        figures = tuple(c for c, kind in self.columns if kind == "DOUBLE")
        return Table(SCHEMA, self.name, (("sr_key", "VARCHAR"), time_column, *self.columns), time_column[0],
                     key=("sr_key", time_column[0], *names), non_negative=figures)


def _endpoint(name: str, path: str, model: type[BaseModel], columns: str, description: str) -> Endpoint:
    # Figures are DOUBLE: the API sends bytes and bits/s as floats in e-notation.
    parsed = tuple((c, "VARCHAR" if c in ("platform", "stream") else "DOUBLE") for c in columns.split())
    return Endpoint(name, path, model, parsed, description)


ENDPOINTS: tuple[Endpoint, ...] = (
    _endpoint("audience", "dna/data/audience", models.Audience, "max average audience_95th",
              "Daily concurrent viewers: maximum, average and 95th percentile."),
    _endpoint("audience_timeseries", "dna/data/audience/timeseries", models.AudienceSeries, "audience",
              "Concurrent viewers per 5-minute interval."),
    _endpoint("traffic", "dna/data/traffic", models.Traffic, "cdn p2p",
              "Daily bytes delivered through the CDN and through P2P."),
    _endpoint("traffic_timeseries", "dna/data/traffic/timeseries", models.TrafficSeries, "cdn p2p",
              "Bytes delivered through the CDN and through P2P per 5-minute interval."),
    _endpoint("bandwidth", "dna/data/bandwidth", models.Bandwidth, "p2p_average cdn_max p2p_max max p2p_95th",
              "Daily bandwidth (bits/s): P2P average, CDN/P2P/total maximum, 95th percentile."),
    _endpoint("bandwidth_timeseries", "dna/data/bandwidth/timeseries", models.BandwidthSeries, "cdn p2p",
              "Average CDN and P2P bandwidth (bits/s) per 5-minute interval."),
    _endpoint("buffering", "dna/data/buffering", models.Buffering, "played buffered",
              "Daily time played and time buffered (ms)."),
    _endpoint("buffering_timeseries", "dna/data/buffering/timeseries", models.BufferingSeries, "played buffered",
              "Time played and time buffered (ms) per 5-minute interval."),
    _endpoint("platforms", "dna/data/platforms", models.Platforms, "platform",
              "Platforms with active Mesh Delivery traffic that day, one row each."),
    _endpoint("streams", "dna/data/streams", models.Streams, "stream",
              "Streams (manifest URLs or content ids) with active traffic that day, one row each."),
)
BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}
BY_PATH = {endpoint.path: endpoint for endpoint in ENDPOINTS}
