"""Steps on workers: one job whose steps run on Celery workers (dagster-celery's executor, broker and result
backend in Redis, ``STREAM_ASSETS_CELERY_BROKER``, default ``redis://127.0.0.1:6379/0``).

Each step runs in whichever worker takes it, on any host. That is safe because, with the several-host
settings (``STREAM_ASSETS_STATE_URL``, ``STREAM_ASSETS_DUCKLAKE_*``, ``DAGSTER_POSTGRES_URL``), nothing a step
shares with another lives in a local file: rids and budgets are in Postgres, the warehouse is a DuckLake, and
the assets pass nothing through an IO manager. Start workers with
``dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml`` (see deploy/README.md).
"""

import dagster as dg
from dagster_celery import celery_executor

from stream_assets.core.config import celery_broker_url
from stream_assets.streamtime.assets import daily_assets as streamtime_daily_assets

# The assets this job runs on workers: all daily (one partitions definition) or snapshots. Streamtime's steps on
# any host share one budget through the limiter's Postgres backend (STREAM_ASSETS_STATE_URL).
ON_WORKERS = (
    dg.AssetSelection.groups("streamroot")
    | dg.AssetSelection.assets(["streamapi", "video_recordings"], ["streamapi", "themes"])
    | dg.AssetSelection.assets(*streamtime_daily_assets).without_checks()  # drift checks run in their own job
)


@dg.configured(celery_executor)
def celery_on_redis(_config) -> dict:
    """The broker is read when a run starts (not at import), so the URL never has to be in code or config."""
    url = celery_broker_url()
    return {"broker": url, "backend": url}


on_celery_workers = dg.define_asset_job(
    "on_celery_workers",
    selection=ON_WORKERS,
    executor_def=celery_on_redis,
    description="The daily Streamroot, StreamAPI and Streamtime assets, one step per Celery task, on any worker host.",
)

defs = dg.Definitions(jobs=[on_celery_workers])
