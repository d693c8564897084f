"""The Dagster face of the Streamtime client: the key from the environment, the shared limiter, and the
per-entity choice of date selector where the view's setup leaves it open."""

from __future__ import annotations

import hashlib
from typing import Callable, ClassVar

from pydantic import Field

from stream_assets.core import config
from stream_assets.core.errors import SettingError
from stream_assets.core.ratelimit import Budget, RateLimiter, parse_budgets
from stream_assets.core.resources import DeploymentSettings
from stream_assets.streamtime.client import DEFAULT_BASE_URL, StreamtimeClient

DEFAULT_RATE_LIMITS = "60/60,720/3600"
DEFAULT_PROCESSING_LIMITS = "30/60,300/3600"
DEFAULT_SENSOR_LOOKBACK_DAYS = 60


def parse_date_selectors(text: str) -> dict[str, str]:
    """``"logged_times=entry_date,jobs=job_created_date"`` -> {entity: selector}; ValueError otherwise."""
    chosen = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        entity, _, selector = part.partition("=")
        if not entity.strip() or not selector.strip():
            raise ValueError(f"invalid STREAMTIME_DATE_SELECTORS entry {part!r}: expected <entity>=<selector>")
        chosen[entity.strip()] = selector.strip()
    return chosen


class StreamtimeResource(DeploymentSettings):
    """One Streamtime organisation: its key, and the budgets every process sharing that key shares.

    Each optional field left empty falls back to its ``STREAMTIME_*`` variable, then to the default."""

    refresh_lookback_variable: ClassVar[str] = "STREAMTIME_REFRESH_LOOKBACK_DAYS"

    api_key: str = Field(description="Organisation API key (Authorization: Bearer ...); from STREAMTIME_API_KEY")
    base_url: str | None = Field(default=None, description=f"API root; empty means $STREAMTIME_BASE_URL or {DEFAULT_BASE_URL}")
    rate_limits: str | None = Field(default=None, description="Request budgets N/seconds; empty: $STREAMTIME_RATE_LIMITS "
                                    f"or {DEFAULT_RATE_LIMITS}")
    processing_limits: str | None = Field(default=None, description="Processing budgets s/seconds; empty: "
                                          f"$STREAMTIME_PROCESSING_LIMITS or {DEFAULT_PROCESSING_LIMITS}")
    date_selectors: dict[str, str] | None = Field(
        default=None, description="Per entity (asset name), the search selector its date window uses, e.g. "
        "{'logged_times': 'logged_time_date'}; only needed when the view's /search/setup lists none of the preferred "
        "names and more than one Date filter. Empty: $STREAMTIME_DATE_SELECTORS (logged_times=...,jobs=...)")
    sensor_lookback_days: str | None = Field(default=None, description="How many closed days the catch-up sensor "
                                             f"watches; empty: $STREAMTIME_SENSOR_LOOKBACK_DAYS or {DEFAULT_SENSOR_LOOKBACK_DAYS}")

    def budgets(self) -> list[Budget]:
        """The organisation's four budgets, each setting checked (SettingError names it)."""
        budgets = []
        for field, variable, default, kind in (("rate_limits", "STREAMTIME_RATE_LIMITS", DEFAULT_RATE_LIMITS, "requests"),
                                               ("processing_limits", "STREAMTIME_PROCESSING_LIMITS",
                                                DEFAULT_PROCESSING_LIMITS, "processing")):
            name, raw = self.setting(field, variable)
            budgets += parse_budgets(raw or default, kind, source=name)  # a ValueError naming the setting
        return budgets

    def limiter(self, on_wait: Callable[[float, str], None] | None = None) -> RateLimiter:
        """The organisation's limiter, in the state store of this instance (SQLite in the data dir, or Postgres)."""
        # Limits are per organisation, so the bucket is the key (hashed: the key never reaches disk): two
        # instances with one key share a budget, two keys never wait for each other.
        return RateLimiter(self.bucket(), self.budgets(), self.limiter_backend(), on_wait=on_wait)

    def bucket(self) -> str:
        """The organisation's name in the shared state: its key, hashed (the key never reaches disk)."""
        return "streamtime:" + hashlib.sha256(self.api_key.encode()).hexdigest()[:16]

    def selectors(self) -> dict[str, str]:
        if self.date_selectors:
            return dict(self.date_selectors)
        name, raw = self.setting("date_selectors", "STREAMTIME_DATE_SELECTORS")
        try:
            return parse_date_selectors(raw or "")
        except ValueError as error:
            raise SettingError(name, "entries <entity>=<selector>, comma-separated", raw) from error

    def sensor_lookback(self) -> int:
        name, raw = self.setting("sensor_lookback_days", "STREAMTIME_SENSOR_LOOKBACK_DAYS")
        return int(config.number(name, raw, DEFAULT_SENSOR_LOOKBACK_DAYS, minimum=1, allow_zero=True, integer=True))

    def client(self, on_wait: Callable[[float, str], None] | None = None, run_id: str | None = None) -> StreamtimeClient:
        """A client for one step of run ``run_id``: it reads each view's setup at most once in 6 hours for the
        organisation, and shares what it learns of page sizes with the run's other steps."""
        base_url = config.base_url("STREAMTIME_BASE_URL", self.base_url, DEFAULT_BASE_URL)
        return StreamtimeClient(self.api_key, base_url, limiter=self.limiter(on_wait), date_selectors=self.selectors(),
                                policy=self.transport_policy(), memo=self.state(),
                                memo_prefix=f"{self.bucket()}:{hashlib.sha256(base_url.encode()).hexdigest()[:8]}",
                                run_id=run_id)
