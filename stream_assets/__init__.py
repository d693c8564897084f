"""stream_assets: four streaming-platform APIs ingested into DuckDB as time-partitioned Dagster assets."""

from stream_assets.definitions import defs

__all__ = ["defs"]
