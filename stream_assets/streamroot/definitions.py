"""Everything Streamroot contributes to the code location."""

import dagster as dg

from stream_assets.streamroot.assets import assets
from stream_assets.streamroot.resources import StreamrootResource
from stream_assets.streamroot.schedules import streamroot_hourly, streamroot_job

defs = dg.Definitions(
    assets=assets,
    jobs=[streamroot_job],
    schedules=[streamroot_hourly],
    resources={
        "streamroot": StreamrootResource(
            api_key=dg.EnvVar("STREAMROOT_API_KEY"), customer_id=dg.EnvVar("STREAMROOT_CUSTOMER_ID")
        ),
    },
)
