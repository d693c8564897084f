"""The Dagster face of the Streamroot client: one account's settings, one client per run.

Every setting of an instance is a field of :class:`StreamrootResource` (the component of an account, or the
default instance's ``definitions.py``, fills them). An empty optional field falls back to its environment
variable, read here when a run uses the resource (resources are the one place of this folder that reads
the environment), then to the default. Values are checked when used, so a bad one fails the run with a
:class:`~stream_assets.core.errors.SettingError` naming the field or the variable, and never stops the code
location from loading.
"""

from __future__ import annotations

from typing import ClassVar, Optional

from pydantic import Field

from stream_assets.core import config
from stream_assets.core.errors import SettingError
from stream_assets.core.resources import DeploymentSettings
from stream_assets.streamroot.client import CONTENT_TYPES, DEFAULT_BASE_URL, StreamrootClient

DEFAULT_CONTENT_TYPE = "all"


class StreamrootResource(DeploymentSettings):
    """One Streamroot customer: its API key and customer id, the API root and the content filter (the
    default instance reads ``STREAMROOT_API_KEY``/``STREAMROOT_CUSTOMER_ID``; an empty ``base_url`` reads
    ``STREAMROOT_BASE_URL``)."""

    refresh_lookback_variable: ClassVar[str] = "STREAMROOT_REFRESH_LOOKBACK_DAYS"

    api_key: str = Field(description="API key (Authorization: API-Key ...); the default instance takes "
                         "$STREAMROOT_API_KEY, another account its own variable")
    customer_id: str = Field(description="Customer id from the dashboard's Company tab; the default instance takes "
                             "$STREAMROOT_CUSTOMER_ID")
    base_url: Optional[str] = Field(
        default=None, description=f"API root; empty: $STREAMROOT_BASE_URL or {DEFAULT_BASE_URL}")
    content_type: Optional[str] = Field(
        default=None, description=f"contentType filter sent with every request, one of {', '.join(CONTENT_TYPES)}; "
        f"empty: {DEFAULT_CONTENT_TYPE} (no environment variable)")

    def api_root(self) -> str:
        """The checked base URL: the field, else ``$STREAMROOT_BASE_URL``, else the real API."""
        name, raw = self.setting("base_url", "STREAMROOT_BASE_URL")
        return config.checked_base_url(raw or DEFAULT_BASE_URL, name)

    def content_filter(self) -> str:
        """The checked ``contentType`` of every request."""
        value = self.content_type or DEFAULT_CONTENT_TYPE
        if value not in CONTENT_TYPES:
            raise SettingError("content_type", "one of " + ", ".join(CONTENT_TYPES), value)
        return value

    def client(self) -> StreamrootClient:
        """A client for one run, with this instance's base URL and transport policy."""
        return StreamrootClient(self.api_key, self.customer_id, self.api_root(), policy=self.transport_policy())
