"""The Dagster face of the StreamOne client, configured from STREAMONE_* variables."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from stream_assets.streamone.client import DEFAULT_BASE_URL, StreamOneClient


class StreamOneResource(dg.ConfigurableResource):
    """A StreamOne actor (user or application) and its pre-shared key.

    Optional settings left empty fall back to ``STREAMONE_BASE_URL``, ``STREAMONE_AUTH_TYPE``
    (default ``application``), ``STREAMONE_ACCOUNT`` and ``STREAMONE_TIMEZONE`` (default ``UTC``).
    """

    actor_id: str = Field(description="User or application id; from STREAMONE_ACTOR_ID")
    psk: str = Field(description="The actor's pre-shared key; from STREAMONE_PSK")
    base_url: str | None = Field(default=None, description=f"API root (default {DEFAULT_BASE_URL})")
    auth_type: str | None = Field(default=None, description="user or application")
    account: str | None = Field(default=None, description="Account id(s), comma-separated")
    timezone: str | None = Field(default=None, description="Timezone asked for; answers are converted to UTC anyway")

    def client(self) -> StreamOneClient:
        env = os.environ.get
        return StreamOneClient(
            self.actor_id, self.psk, self.base_url or env("STREAMONE_BASE_URL") or DEFAULT_BASE_URL,
            auth_type=self.auth_type or env("STREAMONE_AUTH_TYPE") or "application",
            account=self.account or env("STREAMONE_ACCOUNT") or None,
            timezone=self.timezone or env("STREAMONE_TIMEZONE") or "UTC",
        )
