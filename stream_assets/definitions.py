"""The code location: the ``defs/`` folder (one component instance per API account) plus what is shared:
the warehouse and the Celery job."""

from pathlib import Path

import dagster as dg

from stream_assets.celery_job import defs as celery_defs
from stream_assets.components import forget_instances
from stream_assets.core.warehouse import Warehouse


def load_definitions() -> dg.Definitions:
    """Every instance under ``stream_assets/defs/<api>/<account>/defs.yaml``, the warehouse and the Celery job."""
    forget_instances()
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        celery_defs,
        dg.Definitions(resources={"warehouse": Warehouse()}),
    )


defs = load_definitions()
