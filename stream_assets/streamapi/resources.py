"""The Dagster face of the StreamAPI client: one account's settings, each checked when a run uses it.

Every setting is a field of :class:`StreamApiResource`; a field left empty falls back to its ``STREAMAPI_*``
(or ``STREAM_ASSETS_*``) variable, read here when a run or a sensor tick uses the resource, then to the
default. Nothing else under ``stream_assets/streamapi/`` reads the environment: the client receives the base
URL, the transport policy and the rid sequence as arguments.
"""

from __future__ import annotations

import os
from typing import ClassVar, Optional

import dagster as dg
from pydantic import Field

from stream_assets.core import config
from stream_assets.core.errors import SettingError
from stream_assets.core.resources import DeploymentSettings
from stream_assets.core.state import RequestIds
from stream_assets.streamapi.client import DEFAULT_BASE_URL, StreamApiClient

DEFAULT_POLL_SECONDS = 60
POLL_SECONDS_VARIABLE = "STREAMAPI_LIVE_POLL_SECONDS"


def poll_seconds_at_load(configured: str | None = None) -> int:
    """The live sensor's minimum interval, fixed when the definitions are built: ``configured`` (a resource's
    ``live_poll_seconds``, possibly a ``dg.EnvVar``), else ``$STREAMAPI_LIVE_POLL_SECONDS``, when good; else
    the default. A bad value must not stop the code location from loading: each tick reports it instead."""
    if isinstance(configured, dg.EnvVar):  # a field set from the environment is resolved only in a run
        configured = os.environ.get(configured.env_var_name)
    raw = configured if configured not in (None, "") else os.environ.get(POLL_SECONDS_VARIABLE)
    try:
        return int(config.number(POLL_SECONDS_VARIABLE, raw, DEFAULT_POLL_SECONDS, integer=True))
    except SettingError:
        return DEFAULT_POLL_SECONDS


class StreamApiResource(DeploymentSettings):
    """One StreamAPI account: its key and secret (the secret never leaves the signer), its base URL and how
    often its live list is polled."""

    refresh_lookback_variable: ClassVar[str] = "STREAMAPI_REFRESH_LOOKBACK_DAYS"

    key: str = Field(description="API key (the default instance reads STREAMAPI_KEY); it also names the rid "
                     "sequence, so instances with the same key share one")
    secret: str = Field(description="Secret key used to sign requests (the default instance reads STREAMAPI_SECRET)")
    base_url: Optional[str] = Field(default=None, description=f"API root; empty: $STREAMAPI_BASE_URL or {DEFAULT_BASE_URL}")
    live_poll_seconds: Optional[str] = Field(
        default=None, description=f"Seconds between polls of the live list (a whole number > 0); empty: "
        f"${POLL_SECONDS_VARIABLE} or {DEFAULT_POLL_SECONDS}. The sensor's interval is fixed when the code "
        "location loads; a bad value fails each tick, naming the setting")

    def api_base_url(self) -> str:
        """The API root, checked (SettingError names the field or STREAMAPI_BASE_URL)."""
        return config.base_url("STREAMAPI_BASE_URL", self.base_url, DEFAULT_BASE_URL)

    def poll_seconds(self) -> int:
        """Seconds between live-list polls, checked (SettingError names the field or the variable)."""
        name, raw = self.setting("live_poll_seconds", POLL_SECONDS_VARIABLE)
        return int(config.number(name, raw, DEFAULT_POLL_SECONDS, integer=True))

    def poll_seconds_at_load(self) -> int:
        """The sensor's minimum interval, read when the definitions are built (see :func:`poll_seconds_at_load`)."""
        return poll_seconds_at_load(self.live_poll_seconds)

    def client(self) -> StreamApiClient:
        # rids are keyed by the API key (hashed) in this deployment's shared state: every run, sensor and
        # backfill of an account draws from one strictly increasing sequence, and another key never waits.
        return StreamApiClient(self.key, self.secret, self.api_base_url(), policy=self.transport_policy(),
                               request_ids=RequestIds(self.key, self.state()))
