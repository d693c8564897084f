"""A local Streamtime public API v2, written from the help articles and public clients
(reference/apis.md §1).

Routes: ``POST /v2/search?search_view=N[&additional_data=a,b]`` (views 7, 8, 10, 11, 12, 13, 14, 16, 17),
``GET /v2/users``, ``GET /v2/organisation``, and the statistics requests ``POST /v2/statistics/time_series``
and ``POST /v2/statistics/column_series``. **The statistics routes and their schemas are invented**: v2
documents that they exist (several fields and data sources, count/sum/average/all, in one request) but not
their shape (Unknowns 1). ``Authorization: Bearer <key>`` selects the organisation (401 otherwise).

Search follows the public clients: a JSON body whose ``filterGroupCollection`` (with ``filterGroups``) is
required; offset paging with ``maxResults`` up to 1000 (400 above, Unknowns 4); date filters by
``filterGroupTypeId`` with valueMatchTypeId 38/39 (inclusive from/to) or 5/6 (exclusive); a v2 answer is
an array of wrappers holding the record under its key plus additional-data keys that are null unless
requested (comma-separated or repeated ``additional_data``, Unknowns 8; an unknown name is a 400).
Assumed ids: search view 14 and date filter 5 for logged expenses (Unknowns 2).

Limits, per organisation, over sliding windows of arrival times (``request_limits`` and
``processing_limits`` in the syntax of ``STREAMTIME_RATE_LIMITS``/``..._PROCESSING_LIMITS``): beyond a
request budget -> 429; beyond the shortest processing budget -> the request is still processed but
``delay_seconds`` (2 s) later; beyond the other processing budgets -> 429. A 429 carries
``Retry-After`` and ``{"message": ...}`` (Unknowns 5) and is not counted as processed. Each processed
request costs ``processing_seconds`` (slept, and charged). Counters: ``counters``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from collections import deque
from typing import Any, Callable

from stream_assets.core.emulator import Emulator, Reply, Request
from stream_assets.core.ratelimit import Budget, parse_budgets
from stream_assets.streamtime.entities import ADDITIONAL_DATA, BY_VIEW

MAX_RESULTS = 1000
STATUSES = {
    "job": ["In play", "Done", "Archived", "Paused"], "loggedTime": ["incomplete", "complete"],
    "invoice": ["draft", "awaiting payment", "paid", "voided"], "quote": ["pending approval", "approved", "declined", "draft"],
    "loggedExpense": ["draft", "sent", "paid", "external"],
}
FIRST_NAMES = ["Ava", "Ben", "Chloe", "Dev", "Ella", "Finn", "Grace", "Hugo"]


class StreamtimeEmulator(Emulator):
    name = "streamtime"

    def __init__(
        self,
        organisations: dict[str, str] | None = None,  # api key -> organisation name
        *,
        seed: int = 3,
        data_start: str = "2025-11-01",
        request_limits: str = "60/60,720/3600",
        processing_limits: str = "30/60,300/3600",
        processing_seconds: float = 0.0,
        delay_seconds: float = 2.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.organisations = dict(organisations or {"demo-streamtime-key": "Demo Agency"})
        self.seed = seed
        self.data_start = dt.date.fromisoformat(data_start)
        self.request_limits: list[Budget] = parse_budgets(request_limits, "requests")
        self.processing_limits: list[Budget] = parse_budgets(processing_limits, "processing")
        self.processing_seconds, self.delay_seconds, self.now = processing_seconds, delay_seconds, now
        self.counters = {"requests": 0, "processed": 0, "throttled": 0, "delayed": 0}
        self._arrivals: dict[str, deque[float]] = {}
        self._processing: dict[str, deque[tuple[float, float]]] = {}
        self._limits_lock = threading.Lock()
        self._day_cache: dict[tuple[str, dt.date], dict[str, list[dict]]] = {}

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    # --- deterministic data --------------------------------------------------------------------
    def _day(self, day: dt.date) -> dict[str, list[dict]]:
        """Every dated record of one day (the same for every organisation key: one agency's data)."""
        key = ("all", day)
        if key not in self._day_cache:
            rng = random.Random(f"{self.seed}:{day}")
            index = (day - self.data_start).days
            weekday = day.weekday() < 5
            base = index * 1000
            records: dict[str, list[dict]] = {"job": [], "loggedTime": [], "invoice": [], "quote": [], "loggedExpense": []}
            for n in range(rng.randint(1, 3) if weekday else rng.randint(0, 1)):
                created = dt.datetime.combine(day, dt.time(rng.randint(7, 18), rng.randint(0, 59)))
                records["job"].append({
                    "id": base + n, "number": f"J{base + n}", "name": f"Campaign {day:%b %d} #{n + 1}",
                    "fullName": f"J{base + n} Campaign {day:%b %d} #{n + 1}", "companyId": rng.randint(1, 25),
                    "jobCreatedDatetime": created.isoformat() + "Z", "estimatedStartDate": day.isoformat(),
                    "estimatedEndDate": (day + dt.timedelta(days=rng.randint(7, 60))).isoformat(),
                    "isBillable": rng.random() < 0.85, "jobStatus": self._status("job", rng),
                    "totalPlannedMinutes": rng.randint(60, 6000), "totalLoggedMinutes": rng.randint(0, 6000),
                    "totalInvoicedExTax": round(rng.uniform(0, 20000), 2),
                })
            for n in range(rng.randint(25, 45) if weekday else rng.randint(0, 4)):
                minutes = rng.choice([15, 30, 45, 60, 90, 120, 180, 240])
                records["loggedTime"].append({
                    "id": base + 100 + n, "userId": rng.randint(1, 8), "jobId": self._some_job(rng, index),
                    "jobItemUserId": rng.randint(1, 500), "date": day.isoformat(), "minutes": minutes,
                    "notes": f"Worked on deliverable {n + 1}", "cost": round(minutes * 1.1, 2),
                    "totalCostExTax": round(minutes * 1.1, 2), "totalExTax": round(minutes * 2.5, 2),
                    "completedDatetime": None, "loggedTimeStatus": self._status("loggedTime", rng), "isScheduled": False,
                })
            for n in range(rng.randint(0, 2) if weekday else 0):
                total = round(rng.uniform(500, 15000), 2)
                records["invoice"].append({
                    "id": base + 300 + n, "number": f"INV-{base + n}", "name": f"Invoice {day} #{n + 1}",
                    "jobId": self._some_job(rng, index), "invoiceDate": day.isoformat(),
                    "dueDate": (day + dt.timedelta(days=30)).isoformat(), "paidDate": None, "currencyCode": "AUD",
                    "invoiceStatus": self._status("invoice", rng), "invoiceCurrencyTotalAmountExTax": total,
                    "invoiceCurrencyTotalAmountIncTax": round(total * 1.1, 2), "invoiceCurrencyBalance": total,
                })
            for n in range(rng.randint(0, 2) if weekday else 0):
                records["quote"].append({
                    "id": base + 400 + n, "number": f"Q-{base + n}", "name": f"Quote {day} #{n + 1}",
                    "jobId": self._some_job(rng, index), "quoteDate": day.isoformat(),
                    "quoteStatus": self._status("quote", rng), "totalExTax": round(rng.uniform(1000, 30000), 2),
                })
            for n in range(rng.randint(0, 5) if weekday else 0):
                records["loggedExpense"].append({
                    "id": base + 500 + n, "jobId": self._some_job(rng, index), "date": day.isoformat(),
                    "itemName": rng.choice(["Stock photos", "Courier", "Printing", "Travel"]),
                    "quantity": rng.randint(1, 5), "costRate": round(rng.uniform(10, 400), 2),
                    "sellRate": round(rng.uniform(20, 600), 2), "currencyCode": "AUD",
                    "loggedExpenseStatus": self._status("loggedExpense", rng),
                })
            self._day_cache[key] = records
        return self._day_cache[key]

    def _some_job(self, rng: random.Random, index: int) -> int:
        return rng.randint(0, max(0, index)) * 1000

    @staticmethod
    def _status(kind: str, rng: random.Random) -> dict:
        names = STATUSES[kind]
        number = rng.randrange(len(names))
        return {"id": number + 1, "name": names[number]}

    def _days(self, first: dt.date | None = None, last: dt.date | None = None) -> list[dt.date]:
        today = dt.datetime.fromtimestamp(self.now(), dt.timezone.utc).date()
        first = max(first or self.data_start, self.data_start)
        last = min(last or today, today)
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]

    def records(self, view: int, first: dt.date | None = None, last: dt.date | None = None) -> list[dict]:
        """The records a search view holds (dated views: the records of days first..last), by id."""
        entity = BY_VIEW[view]
        if entity.date_field is not None:
            rows = [r for day in self._days(first, last) for r in self._day(day)[entity.record_key]]
        else:
            rows = self._undated(entity.record_key)
        return sorted(rows, key=lambda r: r["id"])

    def _undated(self, key: str) -> list[dict]:
        rng = random.Random(f"{self.seed}:{key}")
        if key == "company":
            return [{"id": n, "name": f"Client {n} Pty Ltd", "companyStatus": {"id": 1, "name": "active"}} for n in range(1, 26)]
        if key == "contact":
            return [{"id": n, "firstName": rng.choice(FIRST_NAMES), "lastName": f"Contact{n}",
                     "email": f"contact{n}@client.example", "companyId": 1 + n % 25,
                     "contactStatus": {"id": 1, "name": "active"}} for n in range(1, 61)]
        jobs = [j["id"] for day in self._days() for j in self._day(day)["job"]]
        items = [{"id": job * 10 + k + 1, "jobId": job, "name": ["Strategy", "Design", "Build", "Review"][k],
                  "jobItemStatus": {"id": 1, "name": "in progress"}, "totalPlannedMinutes": 240 * (k + 1),
                  "totalLoggedMinutes": 60 * k} for job in jobs for k in range(4)]
        if key == "jobItem":
            return items
        return [{"id": item["id"] * 10 + u, "jobItemId": item["id"], "userId": 1 + (item["id"] + u) % 8,
                 "plannedMinutes": 120, "loggedMinutes": 30 * u} for item in items for u in range(1 + item["id"] % 2)]

    def users(self) -> list[dict]:
        return [{"id": n, "firstName": FIRST_NAMES[n - 1], "lastName": "Agency", "displayName": f"{FIRST_NAMES[n - 1]} A.",
                 "role": {"id": 1 + n % 3, "name": ["Admin", "Producer", "Designer"][n % 3]}} for n in range(1, 9)]

    # --- limits --------------------------------------------------------------------------------
    def _admit(self, key: str) -> Reply | float:
        """429 or the extra delay (seconds) for one request arriving now; records it when admitted."""
        with self._limits_lock:
            now = self.now()
            arrivals = self._arrivals.setdefault(key, deque())
            processing = self._processing.setdefault(key, deque())
            horizon = max(b.window for b in self.request_limits + self.processing_limits)
            while arrivals and arrivals[0] <= now - horizon:
                arrivals.popleft()
            while processing and processing[0][0] <= now - horizon:
                processing.popleft()
            self.counters["requests"] += 1
            for budget in self.request_limits:
                inside = [t for t in arrivals if t > now - budget.window]
                if len(inside) >= budget.amount:
                    return self._throttle(inside[-int(budget.amount)] + budget.window - now, f"rate limit {budget.label}")
            delay = 0.0
            shortest = min(self.processing_limits, key=lambda b: b.window)
            for budget in self.processing_limits:
                used = sum(cost for at, cost in processing if at > now - budget.window)
                if used >= budget.amount:
                    if budget is shortest:
                        delay = self.delay_seconds
                    else:
                        return self._throttle(budget.window / 10, f"processing limit {budget.label}")
            arrivals.append(now)
            processing.append((now, self.processing_seconds))
            self.counters["processed"] += 1
            if delay:
                self.counters["delayed"] += 1
            return delay

    def _throttle(self, retry_after: float, why: str) -> Reply:
        self.counters["throttled"] += 1
        return Reply.json({"message": f"Too many requests: {why} exceeded"}, status=429,
                          headers={"Retry-After": str(max(1, math.ceil(retry_after)))})  # HTTP wants whole seconds

    # --- HTTP --------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        auth = request.header("Authorization") or ""
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if key not in self.organisations:
            return Reply.json({"message": "Unauthorised: invalid API key"}, status=401)
        routes = {("POST", "/v2/search"): self._search, ("GET", "/v2/users"): lambda r: self.users(),
                  ("GET", "/v2/organisation"): lambda r: {"name": self.organisations[key], "domain": "demo"},
                  ("POST", "/v2/statistics/time_series"): self._time_series,
                  ("POST", "/v2/statistics/column_series"): self._column_series}
        route = routes.get((request.method, request.path.rstrip("/")))
        if route is None:
            return Reply.json({"message": f"no route {request.method} {request.path}"}, status=404)
        admitted = self._admit(key)
        if isinstance(admitted, Reply):
            return admitted
        try:
            result = route(request)
        except BadRequest as error:
            return Reply.json({"message": str(error)}, status=400, delay=self.processing_seconds + admitted)
        if isinstance(result, Reply):
            return result
        return Reply.json(result, delay=self.processing_seconds + admitted)

    def _search(self, request: Request) -> list[dict]:
        try:
            view = int(request.query.get("search_view", [""])[-1])
        except ValueError:
            raise BadRequest("search_view is required") from None
        entity = BY_VIEW.get(view)
        if entity is None:
            raise BadRequest(f"unknown search_view {view}")
        wanted = [name for value in request.query.get("additional_data", []) for name in value.split(",") if name]
        unknown = [n for n in wanted if n not in ADDITIONAL_DATA.get(view, ())]
        if unknown:
            raise BadRequest(f"unknown additional_data for search_view {view}: {', '.join(unknown)}")
        try:
            body = request.json()
        except ValueError:
            raise BadRequest("body must be JSON") from None
        collection = body.get("filterGroupCollection") if isinstance(body, dict) else None
        if not isinstance(collection, dict) or "filterGroups" not in collection:
            raise BadRequest("filterGroupCollection with filterGroups is required")
        offset, max_results = body.get("offset", 0), body.get("maxResults", 200)
        if not isinstance(offset, int) or not isinstance(max_results, int) or offset < 0 or not 1 <= max_results <= MAX_RESULTS:
            raise BadRequest(f"offset must be >= 0 and maxResults between 1 and {MAX_RESULTS}")
        first, last = self._date_bounds(collection, entity)
        rows = self.records(view, first, last)
        page = rows[offset:offset + max_results]
        return [self._wrap(entity, row, wanted, view) for row in page]

    def _date_bounds(self, collection: dict, entity) -> tuple[dt.date | None, dt.date | None]:
        first = last = None
        for group in _filter_groups(collection):
            if not isinstance(group.get("conditionMatchTypeId", 1), int):
                raise BadRequest("conditionMatchTypeId must be numeric")
            if group.get("filterGroupTypeId") != entity.date_filter:
                raise BadRequest(f"filterGroupTypeId {group.get('filterGroupTypeId')} is not supported here")
            for condition in group.get("filters", []):
                try:
                    value = dt.date.fromisoformat(condition["value"])
                except (KeyError, TypeError, ValueError):
                    raise BadRequest("date filter values must be YYYY-MM-DD") from None
                match = condition.get("valueMatchTypeId")
                if match in (38, 5):
                    bound = value if match == 38 else value + dt.timedelta(days=1)
                    first = bound if first is None else max(first, bound)
                elif match in (39, 6):
                    bound = value if match == 39 else value - dt.timedelta(days=1)
                    last = bound if last is None else min(last, bound)
                else:
                    raise BadRequest(f"valueMatchTypeId {match} is not supported on dates")
        if first is not None and last is not None and first > last:
            return dt.date.max, dt.date.min
        return first, last

    def _wrap(self, entity, row: dict, wanted: list[str], view: int) -> dict:
        wrapper: dict[str, Any] = {entity.record_key: row}
        for name in ADDITIONAL_DATA.get(view, ()):
            wrapper[name] = self._additional(name, row) if name in wanted else None
        if view == 8:
            wrapper["jobLabels"] = ["Billable"] if row["id"] % 3 else []
        return wrapper

    def _additional(self, name: str, row: dict) -> dict:
        if name == "jobItem":
            return {"id": row["jobItemUserId"] // 10, "name": ["Strategy", "Design", "Build", "Review"][row["id"] % 4]}
        if name == "company":
            company = row.get("companyId") or 1
            return {"id": company, "name": f"Client {company} Pty Ltd"}
        return {"id": 1, "displayName": "Ava A."}

    def _statistics_request(self, request: Request) -> tuple[dt.date, dt.date, list[dict]]:
        body = request.json()
        try:
            first, last = dt.date.fromisoformat(body["from"]), dt.date.fromisoformat(body["to"])
            series = list(body["series"])
            for s in series:
                if s["aggregation"] not in ("count", "sum", "average", "all") or int(s["searchView"]) not in BY_VIEW:
                    raise ValueError
        except (KeyError, TypeError, ValueError):
            raise BadRequest("from, to (YYYY-MM-DD) and series [{name, searchView, field, aggregation}] are required") from None
        return first, last, series

    @staticmethod
    def _aggregate(values: list[float], aggregation: str) -> dict[str, float]:
        figures = {"count": len(values), "sum": round(sum(values), 2),
                   "average": round(sum(values) / len(values), 4) if values else 0}
        return figures if aggregation == "all" else {aggregation: figures[aggregation]}

    def _time_series(self, request: Request) -> dict:
        first, last, series = self._statistics_request(request)
        out = []
        for s in series:
            entity = BY_VIEW[int(s["searchView"])]
            points = []
            for day in self._days(first, last):
                rows = self._day(day)[entity.record_key] if entity.date_field else []
                points.append({"date": day.isoformat(), **self._aggregate([float(r.get(s["field"]) or 0) for r in rows], s["aggregation"])})
            out.append({"name": s["name"], "aggregation": s["aggregation"], "points": points})
        return {"series": out}

    def _column_series(self, request: Request) -> dict:
        first, last, series = self._statistics_request(request)
        group_by = request.json().get("groupBy")
        out = []
        for s in series:
            rows = self.records(int(s["searchView"]), first, last)
            groups: dict[Any, list[float]] = {}
            for row in rows:
                groups.setdefault(row.get(group_by), []).append(float(row.get(s["field"]) or 0))
            out.append({"name": s["name"], "aggregation": s["aggregation"],
                        "columns": [{"key": k, **self._aggregate(v, s["aggregation"])} for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))]})
        return {"series": out}


class BadRequest(Exception):
    pass


def _filter_groups(collection: dict):
    for group in collection.get("filterGroups") or []:
        yield group
    for child in collection.get("filterGroupCollections") or []:
        yield from _filter_groups(child)


def pages_needed(records: int, page_size: int = MAX_RESULTS) -> int:
    """Requests a paged search needs to read ``records``: a short (possibly empty) last page ends it."""
    return math.floor(records / page_size) + 1
