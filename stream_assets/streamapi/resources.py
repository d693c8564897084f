"""The Dagster face of the StreamAPI client: credentials from the environment, rids from the data dir."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from stream_assets.core import config
from stream_assets.core.state import RequestIds
from stream_assets.streamapi.client import DEFAULT_BASE_URL, StreamApiClient


class StreamApiResource(dg.ConfigurableResource):
    """StreamAPI credentials: ``STREAMAPI_KEY`` and ``STREAMAPI_SECRET`` (the secret never leaves the signer)."""

    key: str = Field(description="API key; from STREAMAPI_KEY")
    secret: str = Field(description="Secret key used to sign requests; from STREAMAPI_SECRET")
    base_url: str | None = Field(default=None, description=f"API root; empty means $STREAMAPI_BASE_URL or {DEFAULT_BASE_URL}")

    def client(self) -> StreamApiClient:
        base_url = config.base_url("STREAMAPI_BASE_URL", self.base_url, DEFAULT_BASE_URL)
        # rids come from the shared state in STREAM_ASSETS_DATA_DIR: every run, sensor and backfill of
        # this deployment draws from the same strictly increasing sequence.
        return StreamApiClient(self.key, self.secret, base_url, request_ids=RequestIds(self.key))
