"""Streamtime public API v2 client. Plain HTTP, no Dagster.

``Authorization: Bearer <key>``; every request first takes a slot from the shared
:class:`~stream_assets.core.ratelimit.RateLimiter` (requests and processing-time budgets, shared by every
process of the deployment) and is charged its elapsed time afterwards.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import requests
from pydantic import BaseModel, ValidationError

from stream_assets.core.errors import ApiPayloadError, ApiRequestError, ApiResponseError, invalid_payload
from stream_assets.core.http import HttpApi, build_session, error_message
from stream_assets.core.paging import Page, offset_pages
from stream_assets.core.ratelimit import RateLimiter
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.entities import Entity

DEFAULT_BASE_URL = "https://api.streamtime.net/v2"
MAX_RESULTS = 1000  # the largest page the emulator accepts (reference: 1000 is used by real clients)
FROM_INCLUSIVE, TO_INCLUSIVE = 38, 39  # valueMatchTypeIds of the date-window filter
MAX_THROTTLED_RETRIES = 5


def date_window_filter(filter_group_type: int, window: TimeWindow) -> dict:
    """The filterGroupCollection selecting records whose date lies in the window's days (inclusive bounds)."""
    return {
        "conditionMatchTypeId": 1,
        "filterGroups": [],
        "filterGroupCollections": [{
            "conditionMatchTypeId": 1,
            "filterGroups": [{
                "filterGroupTypeId": filter_group_type,
                "conditionMatchTypeId": 1,
                "filters": [{"valueMatchTypeId": FROM_INCLUSIVE, "value": window.first_day.isoformat()},
                            {"valueMatchTypeId": TO_INCLUSIVE, "value": window.last_day.isoformat()}],
            }],
        }],
    }


@dataclass(frozen=True)
class Series:
    """One statistics series: a field of a search view's records, aggregated (count, sum, average or all)."""

    name: str
    search_view: int
    field: str
    aggregation: str = "sum"
    date_filter: int | None = None

    def body(self) -> dict:
        return {"name": self.name, "searchView": self.search_view, "field": self.field,
                "aggregation": self.aggregation, **({"dateFilterGroupTypeId": self.date_filter} if self.date_filter else {})}


class SearchResult(BaseModel):
    """A record and the additional data that came with it (None where not requested)."""

    record: Any
    additional: dict[str, Any]


class StreamtimeClient(HttpApi):
    api_name = "Streamtime"

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        # Retries go through the limiter (each one spends budget), so urllib3 only retries failed connects.
        kwargs.setdefault("session", build_session(retry_statuses=(), read_retries=0))
        super().__init__(base_url, **kwargs)
        if not api_key:
            raise ApiRequestError(self.api_name, "configuration", "an API key is required")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.limiter = limiter
        self.sleep = sleep
        self.throttled = 0  # 429 answers seen (a correct limiter never sees one)

    def __repr__(self) -> str:
        return f"StreamtimeClient(base_url={self.base_url!r})"

    # --- the mechanism -------------------------------------------------------------------------
    def request(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Any:
        """Send through the limiter; honour 429 (Retry-After, else exponential backoff); decode JSON."""
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            response = self._send_limited(method, endpoint, f"{self.base_url}/{path}", **kwargs)
            if response.status_code == 429 and attempt < MAX_THROTTLED_RETRIES:
                self.throttled += 1
                retry_after = response.headers.get("Retry-After", "")
                self.sleep(float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 2.0 ** attempt)
                continue
            if response.status_code != 200:
                raise ApiResponseError(self.api_name, endpoint, error_message(response), status=response.status_code)
            return self.decode_json(endpoint, response)
        raise AssertionError("unreachable")

    def _send_limited(self, method: str, endpoint: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        if self.limiter is None:
            return self.send(method, endpoint, url, headers=headers, **kwargs)
        with self.limiter.slot() as charge:
            started = time.perf_counter()
            try:
                return self.send(method, endpoint, url, headers=headers, **kwargs)
            finally:
                charge(time.perf_counter() - started)  # the API charges processing time; we charge elapsed

    # --- search --------------------------------------------------------------------------------
    def search(self, entity: Entity, window: TimeWindow | None = None, *,
               additional: Sequence[str] | None = None, page_size: int = MAX_RESULTS) -> Iterator[SearchResult]:
        """Every record of the entity's search view (in the window's days when given), paging with
        offset/maxResults until a page comes back shorter than asked. ``additional`` defaults to the
        additional data the entity's asset stores, and nothing else."""
        if entity.search_view is None:
            yield from (SearchResult(record=r, additional={}) for r in self.list(entity))
            return
        extra = list(entity.additional) if additional is None else list(additional)
        params = {"search_view": entity.search_view, **({"additional_data": ",".join(extra)} if extra else {})}
        collection = {"conditionMatchTypeId": 1, "filterGroups": [], "filterGroupCollections": []}
        if window is not None and entity.date_filter is not None:
            collection = date_window_filter(entity.date_filter, window)
        endpoint = f"search?search_view={entity.search_view}"

        def fetch(offset: int, limit: int) -> Page:
            body = {"wildcardSearch": "", "offset": offset, "maxResults": limit, "sortField": 1,
                    "sortAscending": True, "filterGroupCollection": collection}
            page = self.request("POST", endpoint, "search", params=params, json=body)
            if not isinstance(page, list):
                raise ApiPayloadError(self.api_name, endpoint, f"expected a JSON array of results, got {type(page).__name__}")
            return Page([self._result(entity, wrapper, extra) for wrapper in page])

        for page in offset_pages(fetch, page_size):
            yield from page.rows

    def _result(self, entity: Entity, wrapper: Any, extra: list[str]) -> SearchResult:
        endpoint = f"search?search_view={entity.search_view}"
        if not isinstance(wrapper, dict) or not isinstance(wrapper.get(entity.record_key), dict):
            raise ApiPayloadError(self.api_name, endpoint, f"result without a '{entity.record_key}' object")
        record = self._validate(entity.model, wrapper[entity.record_key], endpoint)
        additional = {}
        for key in extra:
            value = wrapper.get(key)
            if value is not None and not isinstance(value, dict):
                raise ApiPayloadError(self.api_name, endpoint, f"additional data '{key}' is not an object")
            additional[key] = value
        return SearchResult(record=record, additional=additional)

    def list(self, entity: Entity) -> list[Any]:
        """A plain list route (``GET {base}/users``): used where v2 has no search view."""
        payload = self.request("GET", entity.list_path, entity.list_path)
        if not isinstance(payload, list):
            raise ApiPayloadError(self.api_name, entity.list_path, "expected a JSON array")
        return [self._validate(entity.model, item, entity.list_path) for item in payload]

    def rows(self, entity: Entity, window: TimeWindow | None = None) -> list[dict[str, Any]]:
        """Warehouse rows: the record's columns plus the additional data columns the entity declares.

        For an entity dated by a timestamp (jobs: ``jobCreatedDatetime``), Streamtime's date filter works on
        the organisation's local dates, which can differ from the UTC date by a day either way: the search
        is widened by a day on each side and only rows whose timestamp lies in the UTC window are kept.
        """
        dated_by_timestamp = window is not None and entity.date_field is not None and \
            entity.model.model_fields[entity.date_field].annotation is dt.datetime
        search_window = TimeWindow(window.start - dt.timedelta(days=1), window.end + dt.timedelta(days=1)) \
            if dated_by_timestamp else window
        rows = []
        for result in self.search(entity, search_window):
            row = result.record.row()
            if dated_by_timestamp and not window.start <= row[entity.date_field] < window.end:
                continue
            for key, (column, attribute) in entity.additional.items():
                row[column] = (result.additional.get(key) or {}).get(attribute)
            rows.append(row)
        return rows

    def organisation(self) -> dict:
        return self.request("GET", "organisation", "organisation")

    # --- statistics ----------------------------------------------------------------------------
    def time_series(self, series: Sequence[Series], window: TimeWindow, interval: str = "day") -> dict[str, list[dict]]:
        """Several series in one request: ``{series name: [{"date": ..., <aggregation>: value}, ...]}``."""
        body = {"from": window.first_day.isoformat(), "to": window.last_day.isoformat(), "interval": interval,
                "series": [s.body() for s in series]}
        return self._series("statistics/time_series", body, "points")

    def column_series(self, series: Sequence[Series], window: TimeWindow, group_by: str) -> dict[str, list[dict]]:
        """Several series grouped by a column (e.g. ``userId``): ``{name: [{"key": ..., <aggregation>: value}]}``."""
        body = {"from": window.first_day.isoformat(), "to": window.last_day.isoformat(), "groupBy": group_by,
                "series": [s.body() for s in series]}
        return self._series("statistics/column_series", body, "columns")

    def _series(self, path: str, body: dict, points_key: str) -> dict[str, list[dict]]:
        payload = self.request("POST", path, path, json=body)
        try:
            return {s["name"]: list(s[points_key]) for s in payload["series"]}
        except (KeyError, TypeError):
            raise ApiPayloadError(self.api_name, path, f"expected {{'series': [{{'name', '{points_key}'}}]}}") from None

    def _validate(self, model: type[BaseModel], data: Any, endpoint: str) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise invalid_payload(self.api_name, endpoint, model.__name__, exc) from None



