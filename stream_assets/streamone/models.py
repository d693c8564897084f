"""Pydantic models of the StreamOne v3 envelope and of the entities we ingest.

Datetimes arrive as ``YYYY-MM-DD HH:MM:SS`` in the timezone the response header reports; validation
converts them to UTC using that zone, passed in the validation context as ``{"tz": ZoneInfo}``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationInfo, field_validator

from stream_assets.core.validation import LenientFields

_DATETIME = "%Y-%m-%d %H:%M:%S"
# H:MM:SS or HH:MM:SS (hours in as many digits as needed), either optionally with .mmm (1 to 3 digits)
_DURATION = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)(?:\.(\d{1,3}))?$")


class Header(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: StrictInt
    statusmessage: StrictStr
    timezone: str | None = None
    count: int | None = None
    apiversion: int | None = None
    cacheable: bool | None = None


class Envelope(BaseModel):
    header: Header
    body: Any


def local_to_utc(value: Any, info: ValidationInfo) -> Any:
    """``YYYY-MM-DD HH:MM:SS`` in the response's zone -> aware UTC datetime (DST-aware, via zoneinfo).

    In a zone with daylight saving, the hour repeated in autumn is ambiguous in this format; it resolves
    to its first (summer-time) occurrence. The clients ask for ``timezone=UTC``, which has no such hour.
    """
    if value in (None, "", "0000-00-00 00:00:00"):
        return None
    if not isinstance(value, str):
        raise ValueError("expected 'YYYY-MM-DD HH:MM:SS'")
    zone: ZoneInfo = (info.context or {}).get("tz") or ZoneInfo("UTC")
    local = dt.datetime.strptime(value, _DATETIME)
    try:
        return local.replace(tzinfo=zone).astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError(f"{value!r} cannot be expressed in UTC") from None


def duration_seconds(value: Any) -> float:
    """``H:MM:SS`` (the vendor's form: hours not zero-padded, e.g. ``0:12:59``) or ``HH:MM:SS``, either
    with milliseconds (``.mmm``, our earlier assumption, still read) -> seconds."""
    if not isinstance(value, str):
        raise ValueError(f"expected a duration 'H:MM:SS', got {type(value).__name__}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration 'H:MM:SS', got {value!r}")
    hours, minutes, seconds, millis = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int((millis or "0").ljust(3, "0")) / 1000


def archived_flag(value: Any) -> bool:
    """``archived`` as a JSON boolean or the integer 0/1 (how the API encodes it in answers is not documented;
    requests send booleans as 0/1). Anything else, strings included, is not understood."""
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected archived as true/false or 0/1, got {value!r}")


class Account(BaseModel):
    id: str
    name: str | None = None

    @staticmethod
    def columns(account: "Account | None") -> dict[str, str | None]:
        """The ``account_id``/``account_name`` warehouse columns of an entity's account (None when absent)."""
        return {"account_id": account.id if account else None, "account_name": account.name if account else None}


class Item(LenientFields):
    """An item of ``item/view``. ``duration`` arrives as ``H:MM:SS`` (StreamOne's own demo app) or
    ``HH:MM:SS.mmm``, ``archived`` as a boolean or 0/1 (assumed); any other form of either becomes None and is
    counted in ``fields_not_understood``, and an answer without ``archived`` leaves it None."""

    model_config = ConfigDict(extra="ignore")
    lenient: ClassVar = {"duration": duration_seconds, "archived": archived_flag}

    id: str
    title: str
    type: str | None = None
    description: str | None = None
    duration: float | None = None  # seconds
    datecreated: dt.datetime
    dateaired: dt.datetime | None = None
    views: StrictInt
    archived: bool | None = None
    account: Account | None = None

    _to_utc = field_validator("datecreated", "dateaired", mode="before")(local_to_utc)

    @property
    def duration_seconds(self) -> float | None:
        return self.duration

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "type": self.type, "description": self.description,
            "duration": self.duration_seconds, "datecreated": self.datecreated, "dateaired": self.dateaired,
            "views": self.views, "archived": self.archived, **Account.columns(self.account),
        }


class LiveStreamType(BaseModel):
    label: str | None = None
    name: str | None = None


class LiveStream(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    title: str
    description: str | None = None
    type: LiveStreamType | None = None
    account: Account | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "description": self.description,
            "type": self.type.name if self.type else None, **Account.columns(self.account),
        }
