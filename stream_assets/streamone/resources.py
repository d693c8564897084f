"""The Dagster face of the StreamOne client: one account's settings, each checked when a run uses it.

Every setting is a field of :class:`StreamOneResource`; an optional field left empty falls back to its
``STREAMONE_*`` (or ``STREAM_ASSETS_*``) variable, read here when a run uses the resource, then to the
default. Nothing else under ``stream_assets/streamone/`` reads the environment: the client receives the base
URL, the transport policy, the authentication type, the account and the timezone as arguments.
"""

from __future__ import annotations

from typing import ClassVar, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from stream_assets.core import config
from stream_assets.core.errors import SettingError
from stream_assets.core.resources import DeploymentSettings
from stream_assets.streamone.client import DEFAULT_BASE_URL, StreamOneClient

AUTH_TYPES = ("user", "application")
DEFAULT_AUTH_TYPE = "application"
DEFAULT_TIMEZONE = "UTC"


class StreamOneResource(DeploymentSettings):
    """One StreamOne actor (a user or an application) and its pre-shared key, with the account(s) it reads
    and the timezone its requests are written in."""

    refresh_lookback_variable: ClassVar[str] = "STREAMONE_REFRESH_LOOKBACK_DAYS"

    actor_id: str = Field(description="User or application id that signs the requests (the default instance "
                          "reads STREAMONE_ACTOR_ID)")
    psk: str = Field(description="The actor's pre-shared key, the HMAC key of every signature (the default "
                     "instance reads STREAMONE_PSK)")
    base_url: Optional[str] = Field(default=None, description=f"API root; empty: $STREAMONE_BASE_URL or "
                                    f"{DEFAULT_BASE_URL}")
    auth_type: Optional[str] = Field(default=None, description="Whether actor_id is a `user` or an `application`; "
                                     f"empty: $STREAMONE_AUTH_TYPE or {DEFAULT_AUTH_TYPE}")
    account: Optional[str] = Field(default=None, description="Account id(s) to read, comma-separated; empty: "
                                   "$STREAMONE_ACCOUNT, else none is sent (the actor's whole scope)")
    timezone: Optional[str] = Field(default=None, description="IANA timezone the requests ask for: the date "
                                    "bounds of item/view (mindatecreated/maxdatecreated) are written in that zone, "
                                    "and answers are converted to UTC whatever it is; empty: $STREAMONE_TIMEZONE "
                                    f"or {DEFAULT_TIMEZONE}")

    def api_base_url(self) -> str:
        """The API root, checked (SettingError names the field or STREAMONE_BASE_URL)."""
        name, raw = self.setting("base_url", "STREAMONE_BASE_URL")
        return config.checked_base_url(raw or DEFAULT_BASE_URL, name)

    def authentication_type(self) -> str:
        """``user`` or ``application`` (SettingError names the field or STREAMONE_AUTH_TYPE)."""
        name, raw = self.setting("auth_type", "STREAMONE_AUTH_TYPE")
        value = raw or DEFAULT_AUTH_TYPE
        if value not in AUTH_TYPES:
            raise SettingError(name, "one of " + ", ".join(AUTH_TYPES), value)
        return value

    def accounts(self) -> str | None:
        """The account id(s) asked for, comma-separated, or None (none sent: the actor's whole scope)."""
        _, raw = self.setting("account", "STREAMONE_ACCOUNT")
        return (raw or "").strip() or None

    def zone(self) -> str:
        """An IANA timezone name (SettingError names the field or STREAMONE_TIMEZONE)."""
        name, raw = self.setting("timezone", "STREAMONE_TIMEZONE")
        value = raw or DEFAULT_TIMEZONE
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingError(name, "an IANA timezone name such as UTC or Europe/Amsterdam", value) from None
        return value

    def client(self) -> StreamOneClient:
        """A client for one run; a setting of the wrong form raises SettingError naming it."""
        return StreamOneClient(self.actor_id, self.psk, self.api_base_url(), auth_type=self.authentication_type(),
                               account=self.accounts(), timezone=self.zone(), policy=self.transport_policy())
