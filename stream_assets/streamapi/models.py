"""Pydantic models of StreamAPI replies. XML carries text only, so fields are parsed from strings
(lax mode): a non-numeric ``size`` or a missing ``public_hostid`` is a validation error.

Broadcaster secrets (``private_hostid``, ``fme_key``) are kept out of ``model_dump()`` and ``repr``,
which is what the assets store and log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from stream_assets.core.windows import from_epoch_ms


def _from_epoch_ms(value: object) -> object:
    if isinstance(value, str) and value.strip().isdigit():
        return from_epoch_ms(int(value))
    if isinstance(value, int):
        return from_epoch_ms(value)
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


class VideoRecording(Reply):
    id: str
    public_hostid: str
    channel_id: str | None = None
    creation_date: EpochMs
    duration: float  # seconds
    filename: str | None = None
    size: int  # bytes
    url: str | None = None
    embed_code: str | None = None


class Theme(Reply):
    id: str
    name: str
    width: int | None = None
    height: int | None = None
    layout_path: str | None = None
    skin_path: str | None = None
