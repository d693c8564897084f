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


# What each stored column holds (the UI shows them on the asset's column schema; reference/apis.md §2). The
# reference names the reply elements but not their formats or units: where a meaning or unit is ours, the text
# says "assumed". One mapping per table, since `id` and `duration` mean different things in different tables.
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "video_recordings": {
        "id": "The recording's id: the id attribute of <video> in video/list",
        "public_hostid": "Public id of the host (broadcaster) whose session was recorded",
        "channel_id": "Channel of the recorded session",
        "creation_date": "When the recording was created, UTC; sent as epoch milliseconds (assumed format). "
                         "video/list's start_date/end_date filter on it, and a day partition owns its day",
        "duration": "Length of the recording in seconds (assumed unit); a value in another format is stored "
                    "as NULL and counted in fields_not_understood",
        "size": "Size of the recording file in bytes (assumed unit); a value in another format is stored as "
                "NULL and counted in fields_not_understood",
        "filename": "File name of the recording",
        "url": "Where the recording file is served",
    },
    "themes": {
        "id": "The theme's id: the id attribute of <theme> in theme/list",
        "name": "Name of the layout theme",
        "width": "Width of the player layout in pixels (assumed unit)",
        "height": "Height of the player layout in pixels (assumed unit)",
        "layout_path": "Path of the theme's layout file",
        "skin_path": "Path of the theme's skin file",
    },
    "live_sessions": {
        "poll_time": "When the sensor polled session/live/list, UTC (set by us, not the API): the partition key",
        "public_hostid": "Public id of the host (broadcaster) on air; the private id is never stored",
        "username": "Username of the broadcaster",
        "start_time": "When the live session started, UTC; sent as epoch milliseconds (assumed format)",
        "duration": "How long the session had been live at the poll, in seconds (assumed unit)",
        "channel_id": "Channel of the live session",
        "total_viewers": "Viewers the session has had in total (assumed meaning of the element)",
        "total_chatters": "Chatters the session has had in total (assumed meaning of the element)",
        "max_viewers": "Most viewers at one time during the session (assumed meaning of the element)",
        "max_chatters": "Most chatters at one time during the session (assumed meaning of the element)",
        "current_viewers": "Viewers watching at the poll",
        "current_chatters": "Chatters in the session at the poll",
    },
}
