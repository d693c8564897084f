"""The Dagster face of the StreamOne client, configured from STREAMONE_* variables."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field

from stream_assets.core import config
from stream_assets.core.errors import SettingError
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
        """A client; a setting of the wrong form raises SettingError naming its variable."""
        env = os.environ.get
        auth_type = self.auth_type or config.env_choice("STREAMONE_AUTH_TYPE", ("user", "application"), "application")
        timezone = self.timezone or env("STREAMONE_TIMEZONE") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingError("STREAMONE_TIMEZONE", "an IANA timezone name such as UTC or Europe/Amsterdam", timezone) from None
        return StreamOneClient(
            self.actor_id, self.psk, config.base_url("STREAMONE_BASE_URL", self.base_url, DEFAULT_BASE_URL),
            auth_type=auth_type,
            account=self.account or env("STREAMONE_ACCOUNT") or None,
            timezone=timezone,
        )
