"""Everything StreamOne contributes to the code location."""

import dagster as dg

from stream_assets.streamone.assets import assets
from stream_assets.streamone.resources import StreamOneResource
from stream_assets.streamone.schedules import items_job, snapshot_job, streamone_daily_snapshot, streamone_items_daily

defs = dg.Definitions(
    assets=assets,
    jobs=[items_job, snapshot_job],
    schedules=[streamone_items_daily, streamone_daily_snapshot],
    resources={"streamone": StreamOneResource(actor_id=dg.EnvVar("STREAMONE_ACTOR_ID"), psk=dg.EnvVar("STREAMONE_PSK"))},
)
