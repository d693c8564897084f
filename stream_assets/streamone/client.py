"""StreamOne platform API v3 client. Plain HTTP, no Dagster.

A request is ``POST {base}/api/<command>/<action>?<parameters>&signature=...`` with the action's
arguments as a form body. The signature is ``hex(HMAC-SHA1(key, path + "?" + query + "&" + body))``
over exactly the bytes sent (keys sorted, as the iOS SDK does), keyed by the user's or application's
pre-shared key (plus the session key for an application acting in a user session).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from typing import Any, Callable, Iterator, Mapping, TypeVar
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from stream_assets.core.errors import ApiPayloadError, ApiRequestError, ApiResponseError, invalid_payload
from stream_assets.core.http import HttpApi, error_message
from stream_assets.core.paging import Page, offset_pages
from stream_assets.core.secrets import register_signature
from stream_assets.streamone import models
from stream_assets.streamone.statuses import RATE_LIMITED, STATUS_NAMES, TIMESTAMP_OUT_OF_RANGE

DEFAULT_BASE_URL = "https://api.streamonecloud.net"
PAGE_SIZE = 100  # the largest `limit` the emulator accepts (the documentation states none)
RATE_LIMIT_BACKOFF = (5.0, 15.0, 45.0)  # seconds before each retry after status 8
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # the API's datetimes: wall time in the request's timezone
Model = TypeVar("Model", bound=BaseModel)


def encode(pairs: Mapping[str, Any]) -> str:
    """``k=v&...`` with keys sorted, unreserved characters kept, ``,`` as ``%2C`` and space as ``+``."""
    return urlencode(sorted((k, _text(v)) for k, v in pairs.items()), quote_via=quote_plus)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def sign(key: str, path: str, query: str, body: str) -> str:
    """HMAC-SHA1 over ``path?query&body`` (the ``&`` is there even without arguments), 40 hex chars."""
    return hmac.new(key.encode(), f"{path}?{query}&{body}".encode(), hashlib.sha1).hexdigest()


def wall_time(instant: dt.datetime, zone: ZoneInfo, *, outwards: dt.timedelta) -> str:
    """``instant`` as the API writes datetimes (``YYYY-MM-DD HH:MM:SS`` in ``zone``), for a date filter bound.

    A wall time in the hour repeated when daylight saving ends names two instants, and which one the
    server reads is not documented: such a bound moves by ``outwards`` (earlier for a lower bound, later
    for an upper one) until it names one instant, so the filter can only let more items through.
    """
    local = instant.astimezone(zone)
    while _ambiguous(local):
        instant += outwards
        local = instant.astimezone(zone)
    return local.strftime(DATETIME_FORMAT)


def _ambiguous(local: dt.datetime) -> bool:
    return local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()


class StreamOneError(ApiResponseError):
    """An envelope whose ``header.status`` is not 0: carries the status, its name and the message."""

    def __init__(self, endpoint: str, status: int, message: str, http_status: int | None = None) -> None:
        self.status_name = STATUS_NAMES.get(status, "UNDOCUMENTED_STATUS")
        super().__init__("StreamOne", endpoint, f"{self.status_name}: {message}", code=status, status=http_status)


class StreamOneClient(HttpApi):
    api_name = "StreamOne"

    def __init__(
        self,
        actor_id: str,
        psk: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        auth_type: str = "application",
        account: str | None = None,
        customer: str | None = None,
        timezone: str = "UTC",
        session_id: str | None = None,
        session_key: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        # Signed requests carry a timestamp: every retry (transport failure, 5xx, 429) is signed afresh.
        super().__init__(base_url, **kwargs)
        if auth_type not in ("user", "application"):
            raise ApiRequestError(self.api_name, "configuration", f"authentication type must be user or application, not {auth_type!r}")
        if not actor_id or not psk:
            raise ApiRequestError(self.api_name, "configuration", "an actor id and a pre-shared key are required")
        if account and customer:
            raise ApiRequestError(self.api_name, "configuration", "give an account or a customer, not both")
        if session_id and auth_type != "application":
            raise ApiRequestError(self.api_name, "configuration", "sessions are for applications acting for a user")
        self.auth_type, self.actor_id = auth_type, actor_id
        self._key = psk + (session_key or "")
        self.register_secrets(psk, session_key, self._key)
        self.session_id, self.account, self.customer, self.timezone = session_id, account, customer, timezone
        self.clock, self.sleep = clock, sleep

    def __repr__(self) -> str:
        return f"StreamOneClient(auth_type={self.auth_type!r}, actor_id={self.actor_id!r}, base_url={self.base_url!r})"

    # --- one request ---------------------------------------------------------------------------
    def parameters(self) -> dict[str, str]:
        params = {"api": "3", "format": "json", "authentication_type": self.auth_type,
                  self.auth_type: self.actor_id, "timestamp": str(int(self.clock()))}
        if self.session_id:
            params["session"] = self.session_id
        if self.account:
            params["account"] = self.account
        if self.customer:
            params["customer"] = self.customer
        if self.timezone:
            params["timezone"] = self.timezone
        return params

    def call(self, command: str, action: str, arguments: Mapping[str, Any] | None = None) -> models.Envelope:
        """One action; the validated envelope of a status-0 answer.

        Status 2 (timestamp out of range) is retried once, re-signed with a fresh timestamp; status 8
        (rate limited after failed authentication) backs off and retries; other statuses raise
        StreamOneError at once.
        """
        endpoint = f"{command}/{action}"
        backoffs = list(RATE_LIMIT_BACKOFF)
        timestamp_retried = False
        while True:
            try:
                return self._send(endpoint, arguments or {})
            except StreamOneError as error:
                if error.code == TIMESTAMP_OUT_OF_RANGE and not timestamp_retried:
                    timestamp_retried = True
                elif error.code == RATE_LIMITED and backoffs:
                    self.sleep(backoffs.pop(0))
                else:
                    raise

    def _send(self, endpoint: str, arguments: Mapping[str, Any]) -> models.Envelope:
        path = f"/api/{endpoint}"
        body = encode(arguments)

        def attempt(deadline: float):
            # Signed afresh for each attempt: the timestamp must be current and a signature never replayed.
            query = encode(self.parameters())
            signature = sign(self._key, path, query, body)
            register_signature(signature)
            return self.send_once("POST", endpoint, f"{self.base_url}{path}?{query}&signature={signature}", deadline,
                                  data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

        response = self.retrying(endpoint, attempt)
        if response.status_code != 200:
            envelope = self._envelope_or_none(response)
            if envelope is not None and envelope.header.status != 0:
                raise StreamOneError(endpoint, envelope.header.status, envelope.header.statusmessage,
                                     http_status=response.status_code)
            raise ApiResponseError(self.api_name, endpoint, error_message(response), status=response.status_code)
        payload = self.decode_json(endpoint, response)
        try:
            envelope = models.Envelope.model_validate(payload)
        except ValidationError as exc:
            raise invalid_payload(self.api_name, endpoint, "envelope", exc, response.status_code) from None
        if envelope.header.status != 0:
            raise StreamOneError(endpoint, envelope.header.status, envelope.header.statusmessage)
        return envelope

    def _envelope_or_none(self, response) -> models.Envelope | None:
        try:
            return models.Envelope.model_validate(self.decode_json("error", response))
        except (ApiPayloadError, ValidationError):
            return None

    # --- views ---------------------------------------------------------------------------------
    def view(self, command: str, model: type[Model], arguments: Mapping[str, Any] | None = None,
             page_size: int = PAGE_SIZE) -> Iterator[Model]:
        """Every row of ``<command>/view``, paging with offset/limit until ``header.count`` rows are read.

        A generator: rows come as their pages arrive, and the caller may stop early.
        """
        endpoint = f"{command}/view"

        def fetch(offset: int, limit: int) -> Page:
            envelope = self.call(command, "view", {**(arguments or {}), "offset": offset, "limit": limit})
            if envelope.header.count is None:
                raise ApiPayloadError(self.api_name, endpoint, "view answer without header.count")
            if not isinstance(envelope.body, list):
                raise ApiPayloadError(self.api_name, endpoint, f"body is {type(envelope.body).__name__}, not a list")
            zone = self._zone(endpoint, envelope.header.timezone)
            try:
                return Page([model.model_validate(row, context={"tz": zone}) for row in envelope.body], envelope.header.count)
            except ValidationError as exc:
                raise invalid_payload(self.api_name, endpoint, model.__name__, exc) from None

        for page in offset_pages(fetch, page_size, api=self.api_name, endpoint=endpoint):
            yield from page.rows

    def _zone(self, endpoint: str, name: str | None) -> ZoneInfo:
        """The zone the answer's datetimes are in: the one it reports, else the one we asked for."""
        try:
            return ZoneInfo(name or self.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiPayloadError(self.api_name, endpoint, f"unknown timezone {name!r} in the answer") from None

    def items(self, *, newest_first: bool = True, **arguments: Any) -> Iterator[models.Item]:
        """Items ordered by creation time (newest first by default), archived and live alike; extra
        arguments filter (itemtype, searchtitle, ``archived=0`` for live items only, ...).

        The API hides archived items unless ``archived`` is sent empty, so it is sent empty by default.
        """
        return self.view("item", models.Item, {"orderfield": "created", "order": "desc" if newest_first else "asc",
                                               "archived": "", **arguments})

    def livestreams(self, **arguments: Any) -> list[models.LiveStream]:
        return list(self.view("livestream", models.LiveStream, arguments))

    def items_created_in(self, start: dt.datetime, end: dt.datetime,
                         progress: Callable[[str], None] | None = None) -> list[models.Item]:
        """Items created in ``[start, end)``, archived and live alike, oldest first.

        One listing filtered by ``mindatecreated``/``maxdatecreated`` (wall times in the timezone the client
        asks for), paged by PAGE_SIZE: a window of n items costs n // PAGE_SIZE + 1 requests (the last page
        is short, or a full one is followed by an empty one), whatever its length or age. Both bounds are
        inclusive, so an item created at ``end`` comes back and is dropped here (it belongs to the next
        window), as is any other item outside ``[start, end)``. ``progress`` hears every 10 pages.
        """
        endpoint = "item/view"
        try:
            zone = ZoneInfo(self.timezone or "")
        except (ZoneInfoNotFoundError, ValueError):
            # Without a timezone the API uses the actor's own, which we cannot know when writing the bounds.
            raise ApiRequestError(self.api_name, endpoint, f"a date-filtered read needs a known timezone, "
                                  f"not {self.timezone!r}") from None
        hour = dt.timedelta(hours=1)
        items = self.items(newest_first=False, mindatecreated=wall_time(start, zone, outwards=-hour),
                           maxdatecreated=wall_time(end, zone, outwards=hour))
        found = []
        for read, item in enumerate(items, 1):
            if start <= item.datecreated < end:
                found.append(item)
            if progress and read % (PAGE_SIZE * 10) == 0:
                progress(f"{endpoint}: {read} items read, now at {item.datecreated:%Y-%m-%d}")
        return found
