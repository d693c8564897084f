"""The code location: every API's definitions merged, plus the shared warehouse."""

import dagster as dg

from stream_assets.celery_job import defs as celery_defs
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamapi.definitions import defs as streamapi_defs
from stream_assets.streamone.definitions import defs as streamone_defs
from stream_assets.streamroot.definitions import defs as streamroot_defs
from stream_assets.streamtime.definitions import defs as streamtime_defs

defs = dg.Definitions.merge(
    streamroot_defs,
    streamapi_defs,
    streamone_defs,
    streamtime_defs,
    celery_defs,
    dg.Definitions(resources={"warehouse": Warehouse()}),
)
