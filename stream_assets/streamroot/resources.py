"""The Dagster face of the Streamroot client: credentials from the environment, one client per run."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from stream_assets.core import config
from stream_assets.streamroot.client import DEFAULT_BASE_URL, StreamrootClient


class StreamrootResource(dg.ConfigurableResource):
    """Streamroot DNA data API credentials. Set them with ``STREAMROOT_API_KEY``/``STREAMROOT_CUSTOMER_ID``."""

    api_key: str = Field(description="API key (Authorization: API-Key ...); from STREAMROOT_API_KEY")
    customer_id: str = Field(description="Customer id from the dashboard's Company tab")
    base_url: str | None = Field(
        default=None, description=f"API root; empty means $STREAMROOT_BASE_URL or {DEFAULT_BASE_URL}"
    )
    content_type: str = Field(default="all", description="contentType filter sent with every request")

    def client(self) -> StreamrootClient:
        base_url = config.base_url("STREAMROOT_BASE_URL", self.base_url, DEFAULT_BASE_URL)
        return StreamrootClient(self.api_key, self.customer_id, base_url)
