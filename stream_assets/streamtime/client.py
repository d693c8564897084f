"""Streamtime public API v2 client, as Streamtime publishes it (reference/streamtime-v2.md). Plain HTTP, no Dagster.

``Authorization: Bearer <key>``; every request first takes a slot from the shared
:class:`~stream_assets.core.ratelimit.RateLimiter` (requests and processing-time budgets, shared by every
process of the deployment) and is charged its elapsed time afterwards.

Search is ``POST {base}/search?search_view=<name>`` with ``{query, limit, offset, sortAscending,
additionalData}``. Selectors are read from ``GET {base}/search/setup?search_view=<name>``, once per view
for the life of a client (one client serves one run), since each call spends budget. Statistics come
from ``POST {base}/report`` with the date field read from ``GET {base}/report/setup``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import requests
from pydantic import ValidationError

from stream_assets.core.errors import (ApiConnectionError, ApiPayloadError, ApiRequestError, ApiResponseError, ApiThrottledError,
                                        DuplicateKeyError, invalid_payload)
from stream_assets.core.http import HttpApi, build_session, error_message, retry_after_seconds
from stream_assets.core.paging import Page, ServedPageSizes, offset_pages
from stream_assets.core.ratelimit import RateLimiter
from stream_assets.core.state import SharedState
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime import query as q
from stream_assets.streamtime.entities import Entity
from stream_assets.streamtime.report import ReportUnreadable, Statistic, daily_buckets, totals

DEFAULT_BASE_URL = "https://api.streamtime.net/v2"
# What clients learn is kept in the shared state for the others: a view's setup for the next runs of the
# organisation (the vendor: stable for a session), saving a request per view and step; and, within one run
# only, the largest page the server served (a server that served n rows in a page does not cap pages below
# n), saving the probe after a short page in the run's other steps. Across runs it is not trusted: a proxy
# that starts capping pages must still be caught (core/paging.py).
SETUP_MEMO_SECONDS = 6 * 3600
PAGE_SIZE_MEMO_SECONDS = 24 * 3600
MAX_LIMIT = 1000  # the documented default and maximum of `limit` (above it the request errors)
LIMITER_DEADLINE_MARGIN = 10.0  # s beyond the transport's total time: scheduling slack of the process
MAX_THROTTLED_RETRIES = 5
REPORT_CHUNK_DAYS = 31  # a range asked of /report with time_breakdown; short enough to hope for daily buckets
SELECTOR_SETTING = "date_selectors"  # the resource setting (and STREAMTIME_DATE_SELECTORS) that picks a selector
UNAUTHORISED = "You are not authorised to make this request"


class StreamtimeCredentialError(ApiResponseError):
    """Streamtime refused the key (HTTP 401). Belongs in core/errors.py as a shared credential error."""

    kind = "credential problem"


@dataclass(frozen=True)
class Filter:
    selector: str
    name: str = ""
    filter_type: str = ""


@dataclass(frozen=True)
class Setup:
    """What ``/search/setup`` (or ``/report/setup``) says about a view."""

    view: str
    filters: tuple[Filter, ...]
    additional_data: tuple[str, ...] = ()
    sort_columns: tuple[str, ...] = ()
    statistics: tuple[str, ...] = ()  # report setup only
    date_fields: tuple[str, ...] = ()  # report setup: dateFieldOptions when given, else its Date filters

    @property
    def selectors(self) -> list[str]:
        return [f.selector for f in self.filters]

    @property
    def date_selectors(self) -> list[str]:
        return [f.selector for f in self.filters if f.filter_type.lower() == "date"]


def _names(value: Any) -> tuple[str, ...]:
    """A setup list whose element type is not documented: strings, or objects naming a key."""
    if not isinstance(value, list):
        return ()
    names = []
    for item in value:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            name = next((item[k] for k in ("key", "selector", "column", "name", "value") if isinstance(item.get(k), str)), None)
            if name:
                names.append(name)
    return tuple(names)


def choose(preferred: Sequence[str], listed: Sequence[str], only: Sequence[str]) -> str | None:
    """The first preferred name that is listed, else the one and only candidate, else None."""
    chosen = next((name for name in preferred if name in listed), None)
    if chosen is None and len(only) == 1:
        chosen = only[0]
    return chosen


@dataclass
class EntityRows:
    """What reading one entity gave: warehouse rows and what was not understood in them."""

    rows: list[dict[str, Any]]
    fields_not_understood: Counter = field(default_factory=Counter)
    date_selector: str | None = None
    additional_data_unavailable: list[str] = field(default_factory=list)


class StreamtimeClient(HttpApi):
    api_name = "Streamtime"

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep, date_selectors: Mapping[str, str] | None = None,
                 memo: SharedState | None = None, memo_prefix: str = "streamtime", run_id: str | None = None,
                 **kwargs: Any) -> None:
        # Retries go through the limiter (each one spends budget), so urllib3 only retries failed connects.
        kwargs.setdefault("session", build_session(retry_statuses=(), read_retries=0))
        super().__init__(base_url, **kwargs)
        if not api_key:
            raise ApiRequestError(self.api_name, "configuration", "an API key is required")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.register_secrets(api_key)  # masked in every error, whatever the server echoes
        self.limiter = limiter
        if limiter is not None:
            # The limiter counts a request it never saw answered as in flight until its deadline: that deadline
            # must outlast the longest this client may spend on one request (every attempt and backoff).
            limiter.deadline = max(limiter.deadline, self.policy.total_seconds + LIMITER_DEADLINE_MARGIN)
        self.sleep = sleep
        self.date_selectors = dict(date_selectors or {})  # entity name -> selector, overriding the preferences
        self.throttled = 0  # 429 answers seen (a correct limiter never sees one)
        self._search_setups: dict[str, Setup] = {}
        self._report_setups: dict[str, Setup] = {}
        # What this run's searches proved about the page sizes the server serves: after one page as large as
        # a later short page, that short page is the end without a probe request (see core/paging.py).
        self._served_page_sizes = ServedPageSizes()
        # Setups from earlier runs of this organisation (``memo_prefix`` names it), and the page sizes served
        # to the other steps of this run (``run_id``).
        self.memo, self._memo_prefix = memo, memo_prefix
        self._page_memo = f"{memo_prefix}:served_page_rows:{run_id}" if memo is not None and run_id else None
        if self._page_memo:
            remembered = memo.recall(self._page_memo, PAGE_SIZE_MEMO_SECONDS)
            self._served_page_sizes.largest = int(remembered) if remembered and remembered.isdigit() else 0
        self._largest_remembered = self._served_page_sizes.largest
        self.last_read: dict[str, EntityRows] = {}  # entity name -> the last rows() read of it

    def __repr__(self) -> str:
        return f"StreamtimeClient(base_url={self.base_url!r})"

    # --- the mechanism -------------------------------------------------------------------------
    def request(self, method: str, endpoint: str, path: str, **kwargs: Any) -> Any:
        """Send through the limiter; honour 429 (Retry-After, else exponential backoff) with waits that add up to
        at most the transport policy's total time; decode JSON. Still throttled then: ApiThrottledError
        (transient: Dagster's retry takes over)."""
        waited = 0.0
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            response = self._send_limited(method, endpoint, f"{self.base_url}/{path}", **kwargs)
            if response.status_code == 429:
                wait = retry_after_seconds(response)
                wait = 2.0 ** attempt if wait is None else wait
                if attempt == MAX_THROTTLED_RETRIES or waited + wait > self.policy.total_seconds:
                    why = ("no more tries" if attempt == MAX_THROTTLED_RETRIES else
                           f"another {wait:.0f} s would pass the {self.policy.total_seconds:g} s a request may wait")
                    raise ApiThrottledError(
                        self.api_name, endpoint, f"still throttled after {attempt + 1} answer(s) 429 and {waited:.0f} s "
                        f"of waiting; {why} ({self._message(response)})", retry_after=wait, status=429)
                self.throttled += 1
                self.sleep(wait)
                waited += wait
                continue
            if response.status_code == 401:
                raise StreamtimeCredentialError(
                    self.api_name, endpoint, f"Streamtime refused the API key for {endpoint} ({self._message(response)}); "
                    "check STREAMTIME_API_KEY (a bearer token from Company Settings). Streamtime also answers 401 "
                    "for a path it does not have, so check STREAMTIME_BASE_URL too", status=401)
            if response.status_code != 200:
                raise ApiResponseError(self.api_name, endpoint, self._message(response), status=response.status_code)
            return self.decode_json(endpoint, response)
        raise AssertionError("unreachable")

    def _message(self, response: requests.Response) -> str:
        """The server's words, with the key blanked should the server echo it."""
        return error_message(response).replace(self._headers["Authorization"][len("Bearer "):], "[api key]")

    def _send_limited(self, method: str, endpoint: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        if self.limiter is None:
            return self.send(method, endpoint, url, headers=headers, **kwargs)
        with self.limiter.slot() as charge:
            started = time.perf_counter()
            try:
                response = self.send(method, endpoint, url, headers=headers, **kwargs)
            except ApiConnectionError as error:
                if getattr(error, "nothing_sent", False):
                    charge(time.perf_counter() - started)  # it never reached the server
                # Otherwise the server may still be working on it: the limiter keeps it in flight until its
                # deadline, rather than charge a guess.
                raise
            charge(time.perf_counter() - started)  # the API charges processing time; we charge elapsed
            return response

    # --- setups --------------------------------------------------------------------------------
    def search_setup(self, view: str) -> Setup:
        """``GET /search/setup`` of a view, asked once per client (the vendor: stable for a session)."""
        if view not in self._search_setups:
            self._search_setups[view] = self._setup("search/setup", view)
        return self._search_setups[view]

    def report_setup(self, view: str) -> Setup:
        """``GET /report/setup`` of a view, asked once per client."""
        if view not in self._report_setups:
            self._report_setups[view] = self._setup("report/setup", view)
        return self._report_setups[view]

    def _setup(self, path: str, view: str) -> Setup:
        endpoint = f"{path}?search_view={view}"
        name = f"{self._memo_prefix}:{path}:{view}"
        remembered = self.memo.recall(name, SETUP_MEMO_SECONDS) if self.memo is not None else None
        payload = json.loads(remembered) if remembered else self.request("GET", endpoint, path, params={"search_view": view})
        if not isinstance(payload, dict) or not isinstance(payload.get("filters"), list):
            raise ApiPayloadError(self.api_name, endpoint, "expected an object with a 'filters' list")
        if self.memo is not None and not remembered:
            self.memo.remember(name, json.dumps(payload))
        filters = []
        for item in payload["filters"]:
            if not isinstance(item, dict) or not isinstance(item.get("selector"), str):
                raise ApiPayloadError(self.api_name, endpoint, "a filter without a 'selector' string")
            filters.append(Filter(item["selector"], str(item.get("name") or ""), str(item.get("filterType") or "")))
        setup = Setup(view, tuple(filters), _names(payload.get("additionalData")), _names(payload.get("sortColumns")),
                      _names(payload.get("statistics")))
        date_fields = _names(payload.get("dateFieldOptions")) or tuple(setup.date_selectors)
        return Setup(setup.view, setup.filters, setup.additional_data, setup.sort_columns, setup.statistics, date_fields)

    def date_selector(self, entity: Entity) -> str:
        """The selector a date window of ``entity`` is written with: the configured one, else the first of
        the entity's preferred names that the view's setup lists, else the view's only Date filter."""
        setup = self.search_setup(entity.view)
        endpoint = f"search/setup?search_view={entity.view}"
        configured = self.date_selectors.get(entity.name)
        if configured:
            if configured not in setup.selectors:
                raise ApiRequestError(self.api_name, endpoint, f"{SELECTOR_SETTING}[{entity.name!r}] = {configured!r} is not "
                                      f"a selector of view '{entity.view}' (its Date filters: {setup.date_selectors or 'none'})")
            return configured
        chosen = choose(entity.date_selectors, setup.selectors, setup.date_selectors)
        if chosen is None:
            raise ApiRequestError(
                self.api_name, endpoint,
                f"cannot choose the date selector of view '{entity.view}' for {entity.name}: none of "
                f"{list(entity.date_selectors)} is listed and its Date filters are {setup.date_selectors or 'none'}. "
                f"Pick one with the streamtime resource setting {SELECTOR_SETTING}={{'{entity.name}': '<selector>'}} "
                f"(or STREAMTIME_DATE_SELECTORS={entity.name}=<selector>)")
        return chosen

    # --- search --------------------------------------------------------------------------------
    def search(self, entity: Entity, window: TimeWindow | None = None, *, additional: Sequence[str] | None = None,
               page_size: int = MAX_LIMIT, context: dict | None = None) -> Iterator[tuple[Any, dict, dict]]:
        """``(record model, additional data, the item as it came)`` for every record of the entity's view
        (in the window's days when given), paging with offset/limit until the answer is provably complete (core/paging.py).
        ``additional`` defaults to the additional data the entity's asset stores."""
        for page in self.search_pages(entity, window, additional=additional, page_size=page_size, context=context):
            yield from page

    def search_pages(self, entity: Entity, window: TimeWindow | None = None, *, additional: Sequence[str] | None = None,
                     page_size: int = MAX_LIMIT, context: dict | None = None) -> Iterator[list[tuple[Any, dict, dict]]]:
        """What :meth:`search` gives, one list per page served (at most ``page_size`` records each)."""
        endpoint = f"search?search_view={entity.view}"
        if not 1 <= page_size <= MAX_LIMIT:
            raise ApiRequestError(self.api_name, endpoint, f"limit must be between 1 and {MAX_LIMIT}")
        extra = list(entity.additional) if additional is None else list(additional)
        # `query` is required; with no window it is empty, which we assume selects every record (README).
        query = "" if window is None else q.date_window(self.date_selector(entity), window.first_day, window.last_day)
        context = {} if context is None else context

        def fetch(offset: int, limit: int) -> Page:
            body = {"query": query, "limit": limit, "offset": offset, "sortAscending": True,
                    **({"additionalData": extra} if extra else {})}
            try:
                page = self.request("POST", endpoint, "search", params={"search_view": entity.view}, json=body)
            except ApiResponseError as error:
                if getattr(error, "status", None) == 400:
                    self.forget_setup(entity.view)  # a selector renamed since the setup was remembered
                raise
            if not isinstance(page, list):
                raise ApiPayloadError(self.api_name, endpoint, f"expected a JSON array of records, got {type(page).__name__}")
            return Page([self._result(entity, item, extra, endpoint, context) for item in page])

        for page in offset_pages(fetch, page_size, api=self.api_name, endpoint=endpoint, served=self._served_page_sizes):
            yield page.rows
        if self._page_memo and self._served_page_sizes.largest > self._largest_remembered:
            self._largest_remembered = self._served_page_sizes.largest
            self.memo.remember(self._page_memo, str(self._largest_remembered))

    def forget_setup(self, view: str) -> None:
        """Drop the remembered setups of ``view``: the next use asks the server again."""
        self._search_setups.pop(view, None)
        self._report_setups.pop(view, None)
        if self.memo is not None:
            for path in ("search/setup", "report/setup"):
                self.memo.remember(f"{self._memo_prefix}:{path}:{view}", "")

    def _result(self, entity: Entity, item: Any, extra: list[str], endpoint: str, context: dict) -> tuple[Any, dict, dict]:
        if not isinstance(item, dict):
            raise ApiPayloadError(self.api_name, endpoint, f"a record is {type(item).__name__}, not an object")
        record = self._unwrapped(entity, item, extra, endpoint)
        additional = {}
        for key in extra:
            value = item.get(key)
            additional[key] = value if isinstance(value, dict) else None
            if value is not None and not isinstance(value, dict):
                context.setdefault("not_understood", Counter())[f"additionalData.{key}"] += 1
        try:
            model = entity.model.model_validate(record, context=context)
        except ValidationError as exc:
            raise invalid_payload(self.api_name, endpoint, f"{entity.view} record (key column)", exc) from None
        return model, additional, item

    def _unwrapped(self, entity: Entity, item: dict, extra: list[str], endpoint: str) -> dict:
        """The record inside a search result: the item itself when flat (it has an ``id``), else its one
        non-null object value that is not additional data asked for, whatever its key (public v2 clients
        unwrap this way; only ``loggedTime``, ``job``, ``company`` and ``contact`` are confirmed names)."""
        if "id" in item:
            return {k: v for k, v in item.items() if k not in extra}
        objects = [key for key, value in item.items() if isinstance(value, dict) and key not in extra]
        if len(objects) == 1:
            return item[objects[0]]
        found = f"objects under {', '.join(map(repr, objects))}" if objects else "no object"
        raise ApiPayloadError(
            self.api_name, endpoint,
            f"a {entity.view} result is neither a flat record (no 'id') nor one record wrapped under one key: "
            f"keys {sorted(item)}, {found} besides the additional data asked for ({', '.join(extra) or 'none'})")

    def read_pages(self, entity: Entity, window: TimeWindow | None = None) -> tuple[EntityRows, Iterator[list[dict[str, Any]]]]:
        """The entity's warehouse rows one page at a time (memory bounded by a page), and an
        :class:`EntityRows` (without rows) whose ``fields_not_understood`` fills as the pages are read.

        For an entity dated by a timestamp (jobs: ``jobCreatedDatetime``), the date selector works on the
        organisation's local dates, which can differ from the UTC date by a day either way: the search
        is widened by a day on each side and only rows whose timestamp lies in the UTC window are kept.
        The same id twice in a page is kept once when both copies agree, and refused when they differ;
        across pages, that is the job of whoever collects them (:meth:`read`, or core/staging.py).
        """
        dated_by_timestamp = window is not None and entity.date_field is not None and \
            dict(entity.model.columns())[entity.date_field] == "TIMESTAMP"
        search_window = TimeWindow(window.start - dt.timedelta(days=1), window.end + dt.timedelta(days=1)) \
            if dated_by_timestamp else window
        setup = self.search_setup(entity.view)
        unavailable = [key for key in entity.additional if key not in setup.additional_data]
        wanted = [key for key in entity.additional if key not in unavailable]
        result = EntityRows([], Counter(), self.date_selector(entity) if window is not None else None, unavailable)
        context: dict = {"not_understood": result.fields_not_understood}

        def pages() -> Iterator[list[dict[str, Any]]]:
            for page in self.search_pages(entity, search_window, additional=wanted, context=context):
                rows: dict[Any, dict] = {}
                for model, additional, item in page:
                    row = model.row()
                    if dated_by_timestamp and not window.start <= row[entity.date_field] < window.end:
                        continue
                    for key, (column, attribute) in entity.additional.items():
                        row[column] = (additional.get(key) or {}).get(attribute)
                    row["record"] = json.dumps(item)
                    self._keep_once(entity, rows, row)
                yield list(rows.values())

        return result, pages()

    def _keep_once(self, entity: Entity, rows: dict[Any, dict], row: dict[str, Any]) -> None:
        previous = rows.get(row["id"])
        if previous is not None and {k: v for k, v in previous.items() if k != "record"} != \
                {k: v for k, v in row.items() if k != "record"}:
            raise DuplicateKeyError(self.api_name, f"search?search_view={entity.view}", "id",
                                    f"record id {row['id']} came twice with different values")
        rows[row["id"]] = row

    def read(self, entity: Entity, window: TimeWindow | None = None) -> EntityRows:
        """Warehouse rows with what was not understood, the date selector used and unavailable additional
        data: :meth:`read_pages` collected in memory (the assets stage the pages instead)."""
        result, pages = self.read_pages(entity, window)
        rows: dict[Any, dict] = {}
        for page in pages:
            for row in page:
                self._keep_once(entity, rows, row)
        result.rows = list(rows.values())
        self.last_read[entity.name] = result
        return result

    def rows(self, entity: Entity, window: TimeWindow | None = None) -> list[dict[str, Any]]:
        """Warehouse rows: the record's columns, the additional data columns the entity declares, ``record``."""
        return self.read(entity, window).rows

    def organisation(self) -> dict:
        return self.request("GET", "organisation", "organisation")

    # --- report --------------------------------------------------------------------------------
    def report(self, view: str, statistics: Sequence[Statistic], first: dt.date, last: dt.date, date_field: str, *,
               time_breakdown: bool = False) -> Any:
        """One ``POST /report`` over the days first..last (inclusive) on ``date_field``; the raw answer."""
        params = {"search_view": view, **({"time_breakdown": "true"} if time_breakdown else {})}
        body = {"statistics": [s.body() for s in statistics], "startDate": first.isoformat(),
                "endDate": last.isoformat(), "dateField": date_field}
        return self.request("POST", f"report?search_view={view}", "report", params=params, json=body)

    def report_date_field(self, view: str, preferred: Sequence[str]) -> str:
        setup = self.report_setup(view)
        chosen = choose(preferred, setup.date_fields, setup.date_fields)
        if chosen is None:
            raise ApiRequestError(self.api_name, f"report/setup?search_view={view}",
                                  f"cannot choose the report date field of view '{view}': none of {list(preferred)} "
                                  f"is offered and its date fields are {list(setup.date_fields) or 'none'}")
        return chosen

    def report_column(self, view: str, preferred: Sequence[str]) -> str:
        setup = self.report_setup(view)
        chosen = choose(preferred, setup.statistics, ())
        if chosen is None:
            raise ApiRequestError(self.api_name, f"report/setup?search_view={view}",
                                  f"none of the columns {list(preferred)} is among the statistics of view '{view}': "
                                  f"{list(setup.statistics)[:20]}")
        return chosen

    def daily_report(self, view: str, statistics: Sequence[Statistic], window: TimeWindow,
                     date_field: str) -> dict[dt.date, list[float | None]]:
        """The figures of each day of the window: from time-breakdown buckets where they are proven daily
        (chunks of :data:`REPORT_CHUNK_DAYS`), else by asking for each day on its own."""
        endpoint = f"report?search_view={view}"
        days_total = (window.last_day - window.first_day).days + 1
        days = [window.first_day + dt.timedelta(days=n) for n in range(days_total)]
        out: dict[dt.date, list[float | None]] = {}
        try:
            for start in range(0, len(days), REPORT_CHUNK_DAYS):
                chunk = days[start:start + REPORT_CHUNK_DAYS]
                if len(chunk) > 1:
                    answer = self.report(view, statistics, chunk[0], chunk[-1], date_field, time_breakdown=True)
                    buckets = daily_buckets(answer, chunk, statistics)
                    if buckets is not None:
                        out.update(buckets)
                        continue
                for day in chunk:
                    out[day] = totals(self.report(view, statistics, day, day, date_field), statistics)
        except ReportUnreadable as error:
            raise ApiPayloadError(self.api_name, endpoint, f"cannot read the report answer: {error}") from None
        return out
