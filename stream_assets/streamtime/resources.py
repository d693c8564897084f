"""The Dagster face of the Streamtime client: the key from the environment, the shared limiter, and the
per-entity choice of date selector where the view's setup leaves it open."""

from __future__ import annotations

import hashlib
import os
from typing import Callable

import dagster as dg
from pydantic import Field

from stream_assets.core import config
from stream_assets.core.ratelimit import RateLimiter, limiter_backend, parse_budgets
from stream_assets.streamtime.client import DEFAULT_BASE_URL, StreamtimeClient

DEFAULT_RATE_LIMITS = "60/60,720/3600"
DEFAULT_PROCESSING_LIMITS = "30/60,300/3600"


def parse_date_selectors(text: str) -> dict[str, str]:
    """``"logged_times=entry_date,jobs=job_created_date"`` -> {entity: selector}; ValueError otherwise."""
    chosen = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        entity, _, selector = part.partition("=")
        if not entity.strip() or not selector.strip():
            raise ValueError(f"invalid STREAMTIME_DATE_SELECTORS entry {part!r}: expected <entity>=<selector>")
        chosen[entity.strip()] = selector.strip()
    return chosen


class StreamtimeResource(dg.ConfigurableResource):
    """Streamtime organisation key (``STREAMTIME_API_KEY``) and the budgets every process shares."""

    api_key: str = Field(description="Organisation API key (Authorization: Bearer ...); from STREAMTIME_API_KEY")
    base_url: str | None = Field(default=None, description=f"API root; empty means $STREAMTIME_BASE_URL or {DEFAULT_BASE_URL}")
    rate_limits: str | None = Field(default=None, description="Request budgets N/seconds; empty: $STREAMTIME_RATE_LIMITS")
    processing_limits: str | None = Field(default=None, description="Processing budgets s/seconds; empty: $STREAMTIME_PROCESSING_LIMITS")
    date_selectors: dict[str, str] | None = Field(
        default=None, description="Per entity (asset name), the search selector its date window uses, e.g. "
        "{'logged_times': 'logged_time_date'}; only needed when the view's /search/setup lists none of the preferred "
        "names and more than one Date filter. Empty: $STREAMTIME_DATE_SELECTORS (logged_times=...,jobs=...)")

    def limiter(self, on_wait: Callable[[float, str], None] | None = None) -> RateLimiter:
        """The organisation's limiter; its state lives in ``$STREAM_ASSETS_DATA_DIR/ratelimit.sqlite`` (Postgres with STREAM_ASSETS_STATE_URL)."""
        rates = self.rate_limits or os.environ.get("STREAMTIME_RATE_LIMITS") or DEFAULT_RATE_LIMITS
        processing = self.processing_limits or os.environ.get("STREAMTIME_PROCESSING_LIMITS") or DEFAULT_PROCESSING_LIMITS
        budgets = parse_budgets(rates, "requests") + parse_budgets(processing, "processing")
        # Limits are per organisation, so the bucket is the key (hashed: the key never reaches disk).
        bucket = "streamtime:" + hashlib.sha256(self.api_key.encode()).hexdigest()[:16]
        return RateLimiter(bucket, budgets, limiter_backend(), on_wait=on_wait)

    def client(self, on_wait: Callable[[float, str], None] | None = None) -> StreamtimeClient:
        """A client for one run: it reads each view's setup at most once."""
        base_url = config.base_url("STREAMTIME_BASE_URL", self.base_url, DEFAULT_BASE_URL)
        selectors = self.date_selectors or parse_date_selectors(os.environ.get("STREAMTIME_DATE_SELECTORS") or "")
        return StreamtimeClient(self.api_key, base_url, limiter=self.limiter(on_wait), date_selectors=selectors)
