"""Everything Streamtime contributes to the code location."""

import dagster as dg

from stream_assets.streamtime.assets import assets
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets.streamtime.sensors import (
    daily_job,
    snapshot_job,
    streamtime_budget_sensor,
    streamtime_daily_schedule,
    streamtime_snapshot_schedule,
)

defs = dg.Definitions(
    assets=assets,
    jobs=[daily_job, snapshot_job],
    schedules=[streamtime_daily_schedule, streamtime_snapshot_schedule],
    sensors=[streamtime_budget_sensor],
    resources={"streamtime": StreamtimeResource(api_key=dg.EnvVar("STREAMTIME_API_KEY"))},
)
