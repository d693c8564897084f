"""Streamroot (Mesh Delivery) DNA data API v3 client. Plain HTTP, no Dagster.

Every endpoint is ``POST {base}/v3/customers/{customer}/dna/data/<metric>[/timeseries]`` with the
filters in a JSON body and ``Authorization: API-Key <key>``. The documented parameter rules are
checked before sending, so a bad call fails fast with a message that says which rule it broke.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable

import pandas as pd
import requests
from pydantic import TypeAdapter, ValidationError

from stream_assets.core.errors import ApiRequestError, ApiResponseError, invalid_payload
from stream_assets.core.http import HttpApi, error_message
from stream_assets.core.windows import TimeWindow, to_epoch_ms
from stream_assets.streamroot.endpoints import BY_NAME, Endpoint
from stream_assets.streamroot.models import KeyedAnswer

DEFAULT_BASE_URL = "https://api.streamroot.io"
CONTENT_TYPES = ("all", "live", "vod")
DURATION = re.compile(r"^([1-9][0-9]*)([smhdw])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
BASE_GRAIN = dt.timedelta(minutes=5)
MAX_INTERVAL = dt.timedelta(weeks=4)
# The documentation states no maximum window. We ask for at most 31 days of 5-minute points per request
# (about 9,000 points per series), which keeps answers small while a year costs 12 requests.
MAX_TIMESERIES_SPAN = dt.timedelta(days=31)
TimeBound = str | int | dt.date | dt.datetime


def parse_duration(value: str) -> dt.timedelta | None:
    """``"10m"`` -> 10 minutes; None when the text is not a number followed by one of s, m, h, d, w."""
    match = DURATION.match(value or "")
    return dt.timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)]) if match else None


def time_bound(value: TimeBound) -> str:
    """A ``from``/``to`` value as the API takes it: ``YYYY-MM-DD`` or epoch milliseconds, as a string."""
    if isinstance(value, dt.datetime):
        return str(to_epoch_ms(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    return str(value)


def bound_to_ms(value: str) -> int | None:
    """Inverse of :func:`time_bound` (a date means 00:00 UTC); None when the text is neither form."""
    if value.isdigit():
        return int(value)
    try:
        return to_epoch_ms(dt.datetime.combine(dt.date.fromisoformat(value), dt.time()))
    except ValueError:
        return None


class StreamrootClient(HttpApi):
    """Calls the DNA data endpoints for one customer. ``requests_made`` counts what was sent."""

    api_name = "Streamroot"

    def __init__(self, api_key: str, customer_id: str, base_url: str = DEFAULT_BASE_URL, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        if not api_key or not customer_id:
            raise ApiRequestError(self.api_name, "configuration", "an API key and a customer id are required")
        self._api_key = api_key
        self.customer_id = customer_id
        self.register_secrets(api_key)

    def __repr__(self) -> str:  # never show the key
        return f"StreamrootClient(customer_id={self.customer_id!r}, base_url={self.base_url!r})"

    def fetch(self, endpoint: str | Endpoint, window: TimeWindow, **filters: Any) -> list[KeyedAnswer]:
        """The endpoint's answer for ``[window.start, window.end)``, sent as ``from``/``to`` in epoch ms."""
        return self.query(endpoint, from_=window.start_ms, to=window.end_ms, **filters)

    def fetch_frame(
        self, endpoint: str | Endpoint, window: TimeWindow, *, progress: Callable[[str], None] | None = None,
        **filters: Any,
    ) -> pd.DataFrame:
        """The endpoint's warehouse rows for ``window``, columns as in its table.

        Timeseries come at the 5-minute base grain, one request per 31 days (rows carry ``ts``, the
        interval start). Aggregates cover the whole window they are asked for, so they are asked day
        by day (rows carry ``day``). ``progress`` hears how far a long range has got.
        """
        spec = BY_NAME[endpoint] if isinstance(endpoint, str) else endpoint
        if spec.is_timeseries:
            parts = []
            chunks = list(window.chunks(MAX_TIMESERIES_SPAN))
            for number, chunk in enumerate(chunks, start=1):
                parts.extend(answer.frame() for answer in self.fetch(spec, chunk, interval="5m", **filters))
                if progress and len(chunks) > 1:
                    progress(f"{spec.path}: {number}/{len(chunks)} requests ({chunk}) fetched")
            columns = ["sr_key", "ts_ms", *[c for c, _ in spec.columns]]
            frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
            frame = frame.reindex(columns=columns)
            frame.insert(1, "ts", pd.to_datetime(frame.pop("ts_ms").astype("int64"), unit="ms", utc=True))
            return frame
        rows = []
        days = list(window.days())
        for number, day in enumerate(days, start=1):
            for answer in self.fetch(spec, day, **filters):
                rows.extend({"day": day.first_day, **row} for row in answer.rows())
            if progress and len(days) > 1 and (number % 7 == 0 or number == len(days)):
                progress(f"{spec.path}: {number}/{len(days)} days fetched")
        return pd.DataFrame(rows, columns=spec.table.column_names)

    def query(
        self,
        endpoint: str | Endpoint,
        *,
        since: str | None = None,
        from_: TimeBound | None = None,
        to: TimeBound | None = None,
        content_type: str | None = None,
        content: str | None = None,
        platform: str | None = None,
        interval: str | None = None,
    ) -> list[KeyedAnswer]:
        """POST one endpoint and return its validated answer (one model per Streamroot key).

        Raises ApiRequestError when the parameters break a documented rule, ApiResponseError for a
        non-200 answer (carrying the API's ``message``/``error``) and ApiPayloadError for a body that
        is not the documented shape.
        """
        spec = BY_NAME[endpoint] if isinstance(endpoint, str) else endpoint
        body = self.build_body(spec, since=since, from_=from_, to=to, content_type=content_type,
                               content=content, platform=platform, interval=interval)
        return self._parse(spec, self._post(spec, body))

    def answer_bytes(self, endpoint: str | Endpoint, window: TimeWindow, **filters: Any) -> bytes:
        """The JSON body of the endpoint's answer for ``[window.start, window.end)``, as bytes, for a
        columnar parser (see columns.py); same parameter checks, transport policy and request count as
        :meth:`query`.

        Raises ApiRequestError for a parameter breaking a documented rule, ApiResponseError for a non-200
        answer, ApiPayloadError for an HTML/XML page, an empty body or bytes that are not UTF-8 (the
        shape and values are left to the parser).
        """
        spec = BY_NAME[endpoint] if isinstance(endpoint, str) else endpoint
        body = self.build_body(spec, since=None, from_=window.start_ms, to=window.end_ms,
                               content_type=filters.get("content_type"), content=filters.get("content"),
                               platform=filters.get("platform"), interval=filters.get("interval"))
        response = self._post(spec, body)
        if response.status_code != 200:
            raise ApiResponseError(self.api_name, spec.path, error_message(response), status=response.status_code)
        return self.json_bytes(spec.path, response)

    def _post(self, spec: Endpoint, body: dict[str, str]) -> requests.Response:
        url = f"{self.base_url}/v3/customers/{self.customer_id}/{spec.path}"
        return self.send("POST", spec.path, url, json=body, headers={"Authorization": f"API-Key {self._api_key}"})

    def build_body(self, spec: Endpoint, *, since: str | None, from_: TimeBound | None, to: TimeBound | None,
                   content_type: str | None, content: str | None, platform: str | None,
                   interval: str | None) -> dict[str, str]:
        """The JSON body, after checking the documented parameter rules."""

        def refuse(message: str) -> ApiRequestError:
            return ApiRequestError(self.api_name, spec.path, message)

        body: dict[str, str] = {}
        if since is not None:
            if from_ is not None or to is not None:
                raise refuse("'since' cannot be combined with 'from'/'to'")
            if parse_duration(since) is None:
                raise refuse(f"invalid since {since!r}: expected a number and a unit s, m, h, d or w (e.g. '16h')")
            body["since"] = since
        elif from_ is not None or to is not None:
            if from_ is None or to is None:
                raise refuse("'from' and 'to' must be given together")
            body["from"], body["to"] = time_bound(from_), time_bound(to)
            start, end = bound_to_ms(body["from"]), bound_to_ms(body["to"])
            if start is None or end is None:
                raise refuse("'from'/'to' must be YYYY-MM-DD or a Unix timestamp in milliseconds")
            if start >= end:
                raise refuse(f"'from' ({body['from']}) must be before 'to' ({body['to']})")
        else:
            raise refuse("give either 'since' or both 'from' and 'to'")
        if content_type is not None:
            if content_type not in CONTENT_TYPES:
                raise refuse(f"invalid contentType {content_type!r}: expected one of {', '.join(CONTENT_TYPES)}")
            body["contentType"] = content_type
        if content is not None:
            body["content"] = content
        if platform is not None:
            body["platform"] = platform
        if interval is not None:
            if not spec.is_timeseries:
                raise refuse("'interval' applies to timeseries endpoints only")
            step = parse_duration(interval)
            if step is None or step % BASE_GRAIN or step > MAX_INTERVAL:
                raise refuse(f"invalid interval {interval!r}: a multiple of 5 minutes, at most 4 weeks (e.g. '10m')")
            body["interval"] = interval
        return body

    def _parse(self, spec: Endpoint, response: requests.Response) -> list[KeyedAnswer]:
        if response.status_code != 200:
            raise ApiResponseError(self.api_name, spec.path, error_message(response), status=response.status_code)
        payload = self.decode_json(spec.path, response)
        try:
            return TypeAdapter(list[spec.model]).validate_python(payload, strict=True)
        except ValidationError as exc:
            raise invalid_payload(self.api_name, spec.path, spec.model.__name__, exc, response.status_code) from None

