"""Pydantic models of StreamAPI replies. XML carries text only, so fields are parsed from strings
(lax mode): a non-numeric ``size`` or a missing ``public_hostid`` is a validation error.

Broadcaster secrets (``private_hostid``, ``fme_key``) are kept out of ``model_dump()`` and ``repr``,
which is what the assets store and log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from typing import ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from stream_assets.core.validation import LenientFields, epoch_ms_to_timestamp, finite_number, whole_number


def _from_epoch_ms(value: object) -> object:
    """Epoch ms (text or int) -> aware UTC datetime; outside 1970..2200 is a validation error."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_ms_to_timestamp(value).to_pydatetime()
    return value


EpochMs = Annotated[dt.datetime, BeforeValidator(_from_epoch_ms)]
Secret = Annotated[str, Field(exclude=True, repr=False)]


class Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreatedSession(Reply):
    public_hostid: str
    private_hostid: Secret


class HostIds(Reply):
    public_hostid: str
    private_hostid: Secret


class LiveSession(Reply):
    public_hostid: str
    private_hostid: Secret
    username: str | None = None
    start_time: EpochMs
    duration: int
    channel_id: str | None = None
    total_viewers: int = 0
    total_chatters: int = 0
    max_viewers: int = 0
    max_chatters: int = 0
    current_viewers: int = 0
    current_chatters: int = 0


class LiveSessionInfo(Reply):
    is_live: bool
    public_hostid: str | None = None
    private_hostid: str | None = Field(default=None, exclude=True, repr=False)
    username: str | None = None
    start_time: EpochMs | None = None
    duration: int | None = None
    channel_id: str | None = None


class VideoRecording(Reply, LenientFields):
    """``duration`` (seconds) and ``size`` (bytes) have an assumed format: unreadable values become None
    and are counted (``fields_not_understood``); negative ones are refused by the warehouse."""

    lenient: ClassVar = {"duration": finite_number, "size": whole_number}

    id: str
    public_hostid: str
    channel_id: str | None = None
    creation_date: EpochMs
    duration: float | None = None  # seconds
    filename: str | None = None
    size: int | None = None  # bytes
    url: str | None = None
    embed_code: str | None = None


class Theme(Reply):
    id: str
    name: str
    width: int | None = None
    height: int | None = None
    layout_path: str | None = None
    skin_path: str | None = None
