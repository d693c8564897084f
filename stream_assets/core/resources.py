"""The settings every API resource shares: where state and staged pages live, and the transport policy.

Each API's resource (``streamtime/resources.py``, ...) derives from :class:`DeploymentSettings`, so that one
instance (one account) carries every setting it runs with, and the clients and ``core/`` receive them as
arguments. A field left empty falls back to its ``STREAM_ASSETS_*`` variable, read here when a run (or a
sensor tick) uses the resource, then to the default; the resource page of the UI shows what was set. Values
are checked when used, so a bad one fails the run with a :class:`SettingError` naming the setting, and never
stops the code location from loading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Optional

import dagster as dg
from pydantic import Field

from stream_assets.core import config
from stream_assets.core.http import TransportPolicy
from stream_assets.core.ratelimit import LimiterBackend, limiter_backend
from stream_assets.core.state import SharedState, shared_state

# (field, variable, default, integer, allow zero): the transport policy's settings (core/http.py)
_HTTP_SETTINGS = (
    ("http_request_seconds", "STREAM_ASSETS_HTTP_REQUEST_SECONDS", "request_seconds", False, False),
    ("http_total_seconds", "STREAM_ASSETS_HTTP_TOTAL_SECONDS", "total_seconds", False, False),
    ("http_retries", "STREAM_ASSETS_HTTP_RETRIES", "retries", True, True),
    ("http_backoff_seconds", "STREAM_ASSETS_HTTP_BACKOFF_SECONDS", "backoff_seconds", False, True),
    ("http_retry_after_cap_seconds", "STREAM_ASSETS_HTTP_RETRY_AFTER_CAP_SECONDS", "retry_after_cap", False, True),
)


DEFAULT_REFRESH_HOURS = 24.0


class DeploymentSettings(dg.ConfigurableResource):
    """Where this account's shared state lives, how its requests are bounded and how often its closed days
    are fetched again (each empty field: its ``STREAM_ASSETS_*`` or ``<API>_*`` variable, then the default)."""

    # The variable of ``refresh_lookback_days`` for this API (``STREAMTIME_REFRESH_LOOKBACK_DAYS``, ...).
    refresh_lookback_variable: ClassVar[str] = "STREAM_ASSETS_REFRESH_LOOKBACK_DAYS"

    data_dir: Optional[str] = Field(default=None, description="Folder of the SQLite state and staged pages; "
                                    "empty: $STREAM_ASSETS_DATA_DIR or ./data")
    state_url: Optional[str] = Field(default=None, description="postgresql:// URL of the shared budgets and rids "
                                     "(several hosts); empty: $STREAM_ASSETS_STATE_URL, else SQLite in the data dir")
    http_request_seconds: Optional[str] = Field(default=None, description="Deadline of one HTTP attempt; empty: "
                                                "$STREAM_ASSETS_HTTP_REQUEST_SECONDS or 120")
    http_total_seconds: Optional[str] = Field(default=None, description="All attempts of one request; empty: "
                                              "$STREAM_ASSETS_HTTP_TOTAL_SECONDS or 300")
    http_retries: Optional[str] = Field(default=None, description="Retries of a transient failure; empty: "
                                        "$STREAM_ASSETS_HTTP_RETRIES or 3")
    http_backoff_seconds: Optional[str] = Field(default=None, description="First wait between retries; empty: "
                                                "$STREAM_ASSETS_HTTP_BACKOFF_SECONDS or 0.5")
    http_retry_after_cap_seconds: Optional[str] = Field(default=None, description="Longest Retry-After obeyed; "
                                                        "empty: $STREAM_ASSETS_HTTP_RETRY_AFTER_CAP_SECONDS or 300")
    http_max_response_mb: Optional[str] = Field(default=None, description="Largest answer read; empty: "
                                                "$STREAM_ASSETS_HTTP_MAX_RESPONSE_MB or 64")

    refresh_lookback_days: Optional[str] = Field(
        default=None, description="How many closed days before today the refresh sensor fetches again, for every "
        "daily asset of this account; empty: $<API>_REFRESH_LOOKBACK_DAYS, else each asset's own default (README, "
        "'Keeping up with the source')")
    refresh_hours: Optional[str] = Field(default=None, description="Each day inside the lookback is fetched again at "
                                         "least this often (hours, fractions allowed); empty: "
                                         f"$STREAM_ASSETS_REFRESH_HOURS or {DEFAULT_REFRESH_HOURS:g}")

    def setting(self, field: str, variable: str) -> tuple[str, str | None]:
        """``(name for errors, raw value)`` of a setting: the field when set, else the variable."""
        configured = getattr(self, field)
        return (config.setting_name(field, variable, configured),
                configured if configured not in (None, "") else os.environ.get(variable))

    def transport_policy(self) -> TransportPolicy:
        """The bounds of every request (core/http.py), each setting checked."""
        default = TransportPolicy()
        values = {}
        for field, variable, attribute, integer, allow_zero in _HTTP_SETTINGS:
            name, raw = self.setting(field, variable)
            values[attribute] = config.number(name, raw, getattr(default, attribute), integer=integer,
                                              allow_zero=allow_zero)
        name, raw = self.setting("http_max_response_mb", "STREAM_ASSETS_HTTP_MAX_RESPONSE_MB")
        megabytes = config.number(name, raw, default.max_response_bytes / 2**20)
        return TransportPolicy(connect_seconds=min(default.connect_seconds, values["request_seconds"]),
                               retries=int(values.pop("retries")), max_response_bytes=int(megabytes * 2**20), **values)

    def refresh_lookback(self, default: int) -> int:
        """Closed days an asset's refresh covers: the account's setting when given, else ``default`` (the
        asset's own). Zero turns the refresh off."""
        name, raw = self.setting("refresh_lookback_days", self.refresh_lookback_variable)
        return int(config.number(name, raw, default, integer=True, allow_zero=True))

    def refresh_period_hours(self) -> float:
        name, raw = self.setting("refresh_hours", "STREAM_ASSETS_REFRESH_HOURS")
        return config.number(name, raw, DEFAULT_REFRESH_HOURS)

    def data_directory(self) -> Path:
        _, raw = self.setting("data_dir", "STREAM_ASSETS_DATA_DIR")
        return Path(raw or "./data").resolve()

    def state_store_url(self) -> str | None:
        name, raw = self.setting("state_url", "STREAM_ASSETS_STATE_URL")
        return config.checked_state_url(raw, name)

    def state(self, timeout: float = 60.0) -> SharedState:
        """The shared state (rids, named locks) of this deployment."""
        return shared_state(timeout, url=self.state_store_url(), folder=self.data_directory())

    def limiter_backend(self) -> LimiterBackend:
        return limiter_backend(self.state_store_url(), self.data_directory())

    def staging_directory(self) -> Path:
        """Where staged pages of a run spill (core/staging.py)."""
        return self.data_directory() / "staging"
