"""Everything StreamAPI contributes to the code location."""

import dagster as dg

from stream_assets.streamapi.assets import assets
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets.streamapi.sensors import live_sessions_job, streamapi_live_sessions_sensor

defs = dg.Definitions(
    assets=assets,
    jobs=[live_sessions_job],
    sensors=[streamapi_live_sessions_sensor],
    resources={"streamapi": StreamApiResource(key=dg.EnvVar("STREAMAPI_KEY"), secret=dg.EnvVar("STREAMAPI_SECRET"))},
)
