"""A local Streamtime public API v2, written from Streamtime's published OpenAPI document as summarised in
``shared/reference/streamtime-v2.md`` (not from our client: it imports nothing of it but the query grammar).

Routes (under ``/v2``): ``POST /search?search_view=<name>``, ``GET /search/setup?search_view=<name>``,
``GET /report/setup?search_view=<name>``, ``POST /report?search_view=<name>[&time_breakdown=true]``,
``GET /users`` and ``GET /organisation``. Search views served: ``time``, ``expenses``, ``invoices``,
``quotes``, ``jobs``, ``job_items``, ``job_item_users``, ``job_phases``, ``job_milestones``,
``invoice_line_items``, ``quote_line_items``, ``companies``, ``contacts``, ``users``; the report views
among them are the reference's twelve minus ``job_item_roles`` and ``job_groups`` (not served).

What the reference states and this emulator does:
- ``Authorization: Bearer <key>`` selects the organisation. A missing or unknown key, **and any unknown
  path without a valid key**, answers 401 ``text/html; charset=UTF-8`` with exactly
  ``You are not authorised to make this request`` (the credential check runs before routing).
- Search body ``{query (required), limit (default and maximum 1000), offset, sortColumn, sortAscending
  (default true), additionalData: [...]}``; the answer is a bare JSON array of records in the reference's
  camelCase field names (``quoteNumber``/``quoteName``, ``loggedExpenseStatus`` a string beside
  ``loggedExpenseStatusId``, users with ``roleId``, job item users with ``totalPlannedMinutes``/
  ``totalLoggedMinutes``, line-item ``quantity`` a string, ...). The query language is parsed by a real
  grammar (``streamtime/query.py``, lark): selectors from the view's setup, ``= != > >= < <=``,
  ``contains``/``not contains``/``in``/``not in`` (a list or one value), ``and``/``or``, parentheses,
  double-quoted values, keywords in any case.
- ``/search/setup``: ``{filters: [{selector, name, description, filterType}], additionalData, sortColumns}``;
  ``/report/setup``: ``{groupingOptions, statistics, filters, dateFieldOptions}``; ``/report`` body
  ``{statistics: [{mode, column}], startDate, endDate, dateField, groupBy, query}`` with the six modes.

Assumptions where the reference is silent (each one may differ on the real service):
1. Selector names, filter types (``Date``, ``Number``, ``Select``, ``Text``, ``Boolean``), the
   additional-data keys and sort columns of each view are ours (table ``VIEWS``): the reference names
   only ``job_status``, ``job_name``, ``job_start_date``, ``job_item_estimated_start_date``,
   ``job_item_name``, ``billable``, ``invoice_date``, ``job_id``, ``company``, ``contact``. The date
   selectors follow design.md's preferences (``logged_time_date``, ``logged_expense_date``,
   ``invoice_date``, ``quote_date``, ``job_created_date``); ``date_filters`` renames a view's Date filters
   so that tests can offer other names.
2. An empty (or blank) ``query`` selects every record of the view.
3. A record comes **flat** (``{"id": ..., ...}``, requested additional data as extra keys named by
   their additionalData key) by default; with ``wrapped=True`` it comes as ``{"<entityKey>": {...},
   "<additional key>": {...} or null, ...}`` with every additional key of the view present (null unless
   requested), as the older v2 did. Only ``loggedTime``, ``job``, ``company`` and ``contact`` are confirmed
   wrapper names: ``wrapper_keys`` (view -> key) wraps a view's records under another name.
4. Quotes carry ``quoteDate`` (the date the ``quote_date`` selector filters on); line items carry
   ``invoiceId``/``quoteId``. Dates of ``job_created_date`` are the UTC dates of ``jobCreatedDatetime``
   (an organisation in UTC), datetimes are ISO 8601 with ``Z``.
5. Errors other than the 401: HTTP 400 ``text/plain`` with a sentence (unknown view, unknown selector,
   unparsable query, a Date value that is not ``YYYY-MM-DD``, ``limit`` above 1000 or below 1, a
   negative ``offset``, an unknown ``sortColumn``, additionalData key, statistic column, mode,
   ``groupBy`` or ``dateField``, ``startDate``/``endDate`` without ``dateField``); an authenticated
   request to an unknown path gets 404 ``text/plain``. No JSON error envelope (none is documented).
6. Text comparisons ignore case; ``contains`` is a substring test against any of the values. A record
   whose field is null matches only ``!=`` and ``not ...``. Records are ordered by ``id`` unless
   ``sortColumn`` says otherwise.
7. ``/report`` answers ``{"totals": {...}}`` with figures under ``count`` and ``<mode>_<column>``; with
   ``time_breakdown=true`` also ``"timeBreakdown": [{"startDate", "endDate", "totals"}]``, buckets
   daily when the range has at most ``report_daily_max_days`` days (31), weekly (7-day buckets from
   ``startDate``) up to 92 days, else calendar months. ``groupBy`` adds ``"groups": [{"key", "totals"}]``.
   Without ``startDate``/``endDate`` the report covers every record.
8. Limits, per organisation, over sliding windows of arrival times (``request_limits`` and
   ``processing_limits`` in the syntax of ``STREAMTIME_RATE_LIMITS``/``..._PROCESSING_LIMITS``, from
   the help article [seed-000]): beyond a request budget -> 429; beyond the shortest processing budget ->
   the request is still processed but ``delay_seconds`` (2 s) later; beyond the other processing budgets
   -> 429. A 429 carries ``Retry-After`` (whole seconds) and ``{"message": ...}`` and is not counted as
   processed. Each processed request costs ``processing_seconds`` (slept, and charged). Setup and report
   requests count like searches. Counters: ``counters``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from stream_assets.core.emulator import Emulator, Reply, Request
from stream_assets.core.ratelimit import Budget, parse_budgets
from stream_assets.streamtime.query import And, Comparison, Or, Query, QuerySyntaxError, comparisons, parse

MAX_LIMIT = 1000
UNAUTHORISED = "You are not authorised to make this request"
MODES = ("count", "sum", "average", "min", "max", "standard_deviation")
FIRST_NAMES = ["Ava", "Ben", "Chloe", "Dev", "Ella", "Finn", "Grace", "Hugo"]
STATUSES = {
    "job": ["In Play", "Complete", "Archived", "Paused"], "loggedTime": ["Incomplete", "Complete"],
    "invoice": ["Draft", "Awaiting Payment", "Paid", "Voided"], "quote": ["Draft", "Sent", "Approved", "Declined"],
    "loggedExpense": ["Draft", "Approved", "Paid"],
}


@dataclass(frozen=True)
class Selector:
    selector: str
    filter_type: str  # Date, Number, Select, Text, Boolean
    field: str  # the record's field it reads; "a.b" reads b of the object a


@dataclass(frozen=True)
class View:
    name: str
    entity_key: str  # the key of a wrapped record
    date_field: str | None  # the record field that places it on a day (dated views are generated day by day)
    selectors: tuple[Selector, ...]
    additional: tuple[str, ...] = ()
    statistics: dict[str, str] = field(default_factory=dict)  # report column -> record field
    grouping: dict[str, str] = field(default_factory=dict)  # groupBy option -> record field
    report: bool = True  # one of the report views


def _s(selector: str, filter_type: str, field_name: str) -> Selector:
    return Selector(selector, filter_type, field_name)


VIEWS: dict[str, View] = {view.name: view for view in (
    View("time", "loggedTime", "date", (
        _s("logged_time_date", "Date", "date"), _s("user_id", "Number", "userId"), _s("job_id", "Number", "jobId"),
        _s("logged_time_status", "Select", "loggedTimeStatus.name"), _s("notes", "Text", "notes"),
        _s("private", "Boolean", "private")), ("jobItem", "job", "user"),
        {"logged_time_minutes": "minutes", "logged_time_total_ex_tax": "totalExTax", "logged_time_cost": "cost"},
        {"user_id": "userId", "job_id": "jobId"}),
    View("expenses", "loggedExpense", "date", (
        _s("logged_expense_date", "Date", "date"), _s("job_id", "Number", "jobId"),
        _s("logged_expense_status", "Select", "loggedExpenseStatus"), _s("item_name", "Text", "itemName")), ("job",),
        {"logged_expense_total_ex_tax": "jobCurrencyTotalExTax", "logged_expense_quantity": "quantity"}, {"job_id": "jobId"}),
    View("invoices", "invoice", "invoiceDate", (
        _s("invoice_date", "Date", "invoiceDate"), _s("invoice_due_date", "Date", "dueDate"), _s("job_id", "Number", "jobId"),
        _s("invoice_status", "Select", "invoiceStatus.name"), _s("invoice_number", "Text", "number")), ("job", "company"),
        {"invoice_currency_total_amount_ex_tax": "invoiceCurrencyTotalAmountExTax",
         "invoice_currency_total_amount_inc_tax": "invoiceCurrencyTotalAmountIncTax"}, {"job_id": "jobId"}),
    View("quotes", "quote", "quoteDate", (
        _s("quote_date", "Date", "quoteDate"), _s("job_id", "Number", "jobId"), _s("quote_status", "Select", "quoteStatus.name"),
        _s("quote_name", "Text", "quoteName")), ("job", "company"),
        {"quote_currency_total_amount_ex_tax": "quoteCurrencyTotalAmountExTax"}, {"job_id": "jobId"}),
    View("jobs", "job", "jobCreatedDatetime", (
        _s("job_created_date", "Date", "jobCreatedDatetime"), _s("job_start_date", "Date", "estimatedStartDate"),
        _s("job_id", "Number", "id"), _s("job_name", "Text", "name"), _s("job_status", "Select", "jobStatus.name"),
        _s("company_id", "Number", "companyId"), _s("billable", "Boolean", "isBillable")), ("company", "contact"),
        {"job_total_planned_minutes": "totalPlannedMinutes", "job_total_invoiced_ex_tax": "totalInvoicedExTax"},
        {"company_id": "companyId", "job_status": "jobStatus.name"}),
    View("job_items", "jobItem", None, (
        _s("job_item_estimated_start_date", "Date", "estimatedStartDate"), _s("job_item_name", "Text", "name"),
        _s("job_item_status", "Select", "jobItemStatus.name"), _s("job_id", "Number", "jobId")), ("job",),
        {"job_item_total_planned_minutes": "totalPlannedMinutes"}, {"job_id": "jobId"}),
    View("job_item_users", "jobItemUser", None, (
        _s("job_item_id", "Number", "jobItemId"), _s("user_id", "Number", "userId")), ("jobItem", "user"),
        {"job_item_user_total_planned_minutes": "totalPlannedMinutes"}, {"user_id": "userId"}),
    View("job_phases", "jobPhase", None, (_s("job_id", "Number", "jobId"), _s("job_phase_name", "Text", "name")),
         report=False),
    View("job_milestones", "jobMilestone", None, (_s("job_milestone_date", "Date", "date"), _s("job_id", "Number", "jobId")),
         report=False),
    View("invoice_line_items", "invoiceLineItem", None, (_s("invoice_id", "Number", "invoiceId"),), report=False),
    View("quote_line_items", "quoteLineItem", None, (_s("quote_id", "Number", "quoteId"),), report=False),
    View("companies", "company", None, (
        _s("company_name", "Text", "name"), _s("company_status", "Select", "companyStatus.name")), ("companyLeadUser",)),
    View("contacts", "contact", None, (
        _s("contact_last_name", "Text", "lastName"), _s("company_id", "Number", "companyId")), ("company", "companyLeadUser")),
    View("users", "user", None, (_s("user_name", "Text", "displayName"), _s("user_status", "Select", "userStatus.name"))),
)}


class BadRequest(Exception):
    pass


def _get(record: dict, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


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
        wrapped: bool = False,
        wrapper_keys: dict[str, str] | None = None,
        date_filters: dict[str, tuple[str, ...]] | None = None,
        record_overrides: dict[str, dict[str, Any]] | None = None,
        report_daily_max_days: int = 31,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.organisations = dict(organisations or {"demo-streamtime-key": "Demo Agency"})
        self.seed = seed
        self.data_start = dt.date.fromisoformat(data_start)
        self.request_limits: list[Budget] = parse_budgets(request_limits, "requests")
        self.processing_limits: list[Budget] = parse_budgets(processing_limits, "processing")
        self.processing_seconds, self.delay_seconds, self.now = processing_seconds, delay_seconds, now
        self.wrapped = wrapped  # records wrapped under their entity key (assumption 3)
        self.wrapper_keys = dict(wrapper_keys or {})  # view -> the key its records are wrapped under
        self.date_filters = dict(date_filters or {})  # view -> names of its Date filters (assumption 1)
        self.record_overrides = dict(record_overrides or {})  # view -> fields set on every record it serves
        self.report_daily_max_days = report_daily_max_days
        self.counters = {"requests": 0, "processed": 0, "throttled": 0, "delayed": 0}
        self.searches: list[dict] = []  # every search served: view, parsed query, limit, offset, additionalData
        self._arrivals: dict[str, deque[float]] = {}
        self._processing: dict[str, deque[tuple[float, float]]] = {}
        self._limits_lock = threading.Lock()
        self._data_lock = threading.Lock()
        self._day_cache: dict[dt.date, dict[str, list[dict]]] = {}
        self._undated_cache: dict[tuple[str, dt.date], list[dict]] = {}

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    def clear(self) -> None:
        super().clear()
        self.searches.clear()

    # --- what each view offers -----------------------------------------------------------------
    def selectors(self, view: View) -> list[Selector]:
        """The view's filters, with its Date filters renamed when ``date_filters`` says so."""
        if view.name not in self.date_filters:
            return list(view.selectors)
        dates = [s for s in view.selectors if s.filter_type == "Date"]
        target = dates[0].field if dates else (view.date_field or "date")
        return [s for s in view.selectors if s.filter_type != "Date"] + \
            [Selector(name, "Date", target) for name in self.date_filters[view.name]]

    def _view(self, request: Request, report: bool = False) -> View:
        name = (request.query.get("search_view") or [""])[-1]
        view = VIEWS.get(name)
        if view is None or (report and not view.report):
            raise BadRequest(f"search_view must be one of the {'report' if report else 'search'} views, not {name!r}")
        return view

    # --- deterministic data --------------------------------------------------------------------
    def _day(self, day: dt.date) -> dict[str, list[dict]]:
        """Every dated record of one day, by view (the same for every organisation key: one agency's data)."""
        with self._data_lock:
            if day in self._day_cache:
                return self._day_cache[day]
        rng = random.Random(f"{self.seed}:{day}")
        index = (day - self.data_start).days
        weekday = day.weekday() < 5
        base = index * 1000
        records: dict[str, list[dict]] = {"jobs": [], "time": [], "invoices": [], "quotes": [], "expenses": []}
        for n in range(rng.randint(1, 3) if weekday else rng.randint(0, 1)):
            created = dt.datetime.combine(day, dt.time(rng.randint(0, 23), rng.randint(0, 59)))
            # A job's number is a number or null in public v2 type definitions (text in the reference).
            number = None if (index + n) % 9 == 4 else base + n
            records["jobs"].append({
                "id": base + n, "number": number, "name": f"Campaign {day:%b %d} #{n + 1}",
                "fullName": f"{number or ''} Campaign {day:%b %d} #{n + 1}".strip(), "companyId": rng.randint(1, 25),
                "contactId": rng.randint(1, 60), "jobLeadUserId": rng.randint(1, 8), "branchId": 1,
                "jobCreatedDatetime": created.isoformat() + "Z", "estimatedStartDate": day.isoformat(),
                "estimatedEndDate": (day + dt.timedelta(days=rng.randint(7, 60))).isoformat(),
                "isBillable": rng.random() < 0.85, "jobStatus": self._status("job", rng),
                "totalPlannedMinutes": rng.randint(60, 6000), "totalLoggedMinutes": rng.randint(0, 6000),
                "totalLoggedExTax": round(rng.uniform(0, 9000), 2), "totalInvoicedExTax": round(rng.uniform(0, 20000), 2),
            })
        for n in range(rng.randint(25, 45) if weekday else rng.randint(0, 4)):
            minutes = rng.choice([15, 30, 45, 60, 90, 120, 180, 240])
            on_job = rng.random() < 0.8
            records["time"].append({
                "id": base + 100 + n, "userId": rng.randint(1, 8), "date": day.isoformat(), "minutes": minutes,
                "jobId": self._some_job(rng, index) if on_job else None,
                "jobItemUserId": None if on_job else rng.randint(1, 500),
                "loggedTimeStatus": self._status("loggedTime", rng), "notes": f"Worked on deliverable {n + 1}",
                "private": False, "completedDatetime": None, "scheduleNotes": None, "cost": round(minutes * 1.1, 2),
                "totalCostExTax": round(minutes * 1.1, 2), "totalExTax": round(minutes * 2.5, 2),
            })
        for n in range(rng.randint(0, 2) if weekday else 0):
            total = round(rng.uniform(500, 15000), 2)
            records["invoices"].append({
                "id": base + 300 + n, "jobId": self._some_job(rng, index), "name": f"Invoice {day} #{n + 1}",
                "number": f"INV-{base + n}", "reference": None, "invoiceStatus": self._status("invoice", rng),
                "invoiceType": {"id": 1, "name": "Standard"}, "invoiceDate": day.isoformat(),
                "dueDate": (day + dt.timedelta(days=30)).isoformat(), "paidDate": None, "currencyCode": "AUD",
                "exchangeRate": 1, "invoiceCurrencyTotalAmountExTax": total,
                "invoiceCurrencyTotalAmountIncTax": round(total * 1.1, 2), "invoiceCurrencyBalance": total,
            })
        for n in range(rng.randint(0, 2) if weekday else 0):
            total = round(rng.uniform(1000, 30000), 2)
            records["quotes"].append({
                "id": base + 400 + n, "jobId": self._some_job(rng, index), "quoteName": f"Quote {day} #{n + 1}",
                "quoteNumber": f"Q-{base + n}", "quoteStatus": self._status("quote", rng), "quoteDate": day.isoformat(),
                "quoteCurrencyTotalAmountExTax": total, "quoteCurrencyTotalAmountIncTax": round(total * 1.1, 2),
                "approvedDatetime": None, "createdUser": FIRST_NAMES[rng.randrange(8)] + " Agency", "approvedBy": None,
            })
        for n in range(rng.randint(0, 5) if weekday else 0):
            status = rng.randrange(3)
            quantity, cost = rng.randint(1, 5), round(rng.uniform(10, 400), 2)
            records["expenses"].append({
                "id": base + 500 + n, "jobId": self._some_job(rng, index), "jobPhaseId": None,
                "itemName": rng.choice(["Stock photos", "Courier", "Printing", "Travel"]), "type": "Expense",
                "loggedExpenseStatus": STATUSES["loggedExpense"][status], "loggedExpenseStatusId": status + 1,
                "date": day.isoformat(), "quantity": quantity, "costRate": cost,
                "sellRate": round(cost * 1.3, 2), "currencyCode": "AUD", "currencySymbol": "$", "exchangeRate": 1,
                "markup": 30, "jobCurrencyTotalExTax": round(quantity * cost * 1.3, 2), "userId": rng.randint(1, 8),
            })
        with self._data_lock:
            self._day_cache[day] = records
        return records

    def _some_job(self, rng: random.Random, index: int) -> int:
        return rng.randint(0, max(0, index)) * 1000

    @staticmethod
    def _status(kind: str, rng: random.Random) -> dict:
        names = STATUSES[kind]
        number = rng.randrange(len(names))
        return {"id": number + 1, "name": names[number]}

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), dt.timezone.utc).date()

    def _days(self, first: dt.date | None = None, last: dt.date | None = None) -> list[dt.date]:
        first = max(first or self.data_start, self.data_start)
        last = min(last or self._today(), self._today())
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]

    def records(self, view: str, first: dt.date | None = None, last: dt.date | None = None) -> list[dict]:
        """The records a search view holds, as served flat (dated views: those of days first..last), by id."""
        spec = VIEWS[view]
        if spec.date_field is not None:
            days = self._days(first, last)
            rows = [r for day in days for r in self._day(day)[view]]
            span = (days[0].isoformat(), days[-1].isoformat()) if days else None
            rows = self.past.apply(view, rows, keep_added=lambda r: span is not None and
                                   span[0] <= str(_get(r, spec.date_field) or "")[:10] <= span[1])
        else:
            rows = self.past.apply(view, self._undated(view))
        overrides = self.record_overrides.get(view)
        rows = [{**r, **overrides} for r in rows] if overrides else rows
        return sorted(rows, key=lambda r: r["id"])

    def _undated(self, view: str) -> list[dict]:
        key = (view, self._today())
        with self._data_lock:
            if key in self._undated_cache:
                return self._undated_cache[key]
        rows = self._make_undated(view)
        with self._data_lock:
            self._undated_cache[key] = rows
        return rows

    def _make_undated(self, view: str) -> list[dict]:
        rng = random.Random(f"{self.seed}:{view}")
        if view == "companies":
            return [{"id": n, "name": f"Client {n} Pty Ltd", "companyStatus": {"id": 1, "name": "Active"},
                     "taxNumber": f"TN{n:05d}", "phone1": f"+61 2 9000 {n:04d}", "websiteAddress": f"client{n}.example",
                     "branchId": 1, "rateCardId": 1, "companyLeadUserId": 1 + n % 8} for n in range(1, 26)]
        if view == "contacts":
            return [{"id": n, "firstName": rng.choice(FIRST_NAMES), "lastName": f"Contact{n}",
                     "email": f"contact{n}@client.example", "phoneNumber": None, "position": "Producer",
                     "contactStatus": {"id": 1, "name": "Active"}, "companyId": 1 + n % 25, "active": True}
                    for n in range(1, 61)]
        if view == "users":
            return [{"id": n, "displayName": f"{FIRST_NAMES[n - 1]} Agency", "firstName": FIRST_NAMES[n - 1],
                     "lastName": "Agency", "email": f"{FIRST_NAMES[n - 1].lower()}@agency.example",
                     "branchId": 1, "roleId": None if n == 8 else 1 + n % 3,
                     "userStatus": {"id": 2, "name": "Inactive"} if n == 7 else {"id": 1, "name": "Active"},
                     "costRate": 40.0 + n, "billableRate": 120.0 + 5 * n,
                     **{f"hoursWorked{day}": (0.0 if day in ("Saturday", "Sunday") else 7.5 if n % 4 else 4.0)
                        for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")},
                     "labels": [{"id": 10 + n % 3, "name": ["Design", "Production", "Management"][n % 3]}]}
                    for n in range(1, 9)]
        days = self._days()
        jobs = [j["id"] for day in days for j in self._day(day)["jobs"]]
        if view == "job_phases":
            return [{"id": job * 10 + p + 1, "jobId": job, "name": ["Discovery", "Delivery"][p], "orderId": p + 1}
                    for job in jobs for p in range(2)]
        if view == "job_milestones":
            return [{"id": job + 7, "jobId": job, "jobItemId": None, "name": "Client review",
                     "date": (self.data_start + dt.timedelta(days=job // 1000 + 14)).isoformat()} for job in jobs]
        if view in ("invoice_line_items", "quote_line_items"):
            source, parent = ("invoices", "invoiceId") if view == "invoice_line_items" else ("quotes", "quoteId")
            rows = []
            for day in days:
                for record in self._day(day)[source]:
                    for k in range(1 + record["id"] % 3):
                        quantity, rate = 1 + (record["id"] + k) % 4, 150.0 + 10 * k
                        line = {"id": record["id"] * 10 + k, parent: record["id"], "name": ["Design", "Build", "Hosting"][k],
                                "quantity": str(quantity), "unitRate": rate, "totalAmountExTax": quantity * rate}
                        if view == "invoice_line_items":
                            line.update(taxName="GST", accountCode="200")
                        rows.append(line)
            return rows
        items = [{"id": job * 10 + k + 1, "jobId": job, "jobPhaseId": job * 10 + 1 + k // 2,
                  "name": ["Strategy", "Design", "Build", "Review"][k], "description": None,
                  "jobItemStatus": {"id": 1, "name": "In Play"}, "sellRate": 150.0, "costingMethod": {"id": 1, "name": "Time"},
                  "timeAllocationMethod": {"id": 1 + k % 2, "name": ["Time By Item", "Time By Person"][k % 2]},
                  "isBillable": True, "totalPlannedMinutes": 240 * (k + 1), "totalIncompleteMinutes": 60,
                  "totalLoggedMinutes": 60 * k, "estimatedStartDate": None, "estimatedEndDate": None,
                  "completedDate": None, "orderId": k + 1} for job in jobs for k in range(4)]
        if view == "job_items":
            return items
        return [{"id": item["id"] * 10 + u, "jobItemId": item["id"], "userId": 1 + (item["id"] + u) % 8,
                 "jobItemUserStatus": {"id": 1, "name": "Scheduled"}, "jobCurrencySellRate": 150.0,
                 "totalPlannedMinutes": 120 if item["timeAllocationMethod"]["id"] == 2 else 0,
                 "totalIncompleteMinutes": 60, "totalLoggedMinutes": 30 * u, "completedDate": None,
                 "earliestStartDate": None} for item in items for u in range(1 + item["id"] % 2)]

    def _additional(self, name: str, record: dict) -> dict:
        if name == "jobItem":
            item = record.get("jobItemId") or (record.get("jobItemUserId") or 0) // 10 or record["id"] % 97
            return {"id": item, "name": ["Strategy", "Design", "Build", "Review"][item % 4]}
        if name == "job":
            return {"id": record.get("jobId"), "name": f"Job {record.get('jobId')}"}
        if name == "company":
            company = record.get("companyId") or 1 + record["id"] % 25
            return {"id": company, "name": f"Client {company} Pty Ltd"}
        if name == "contact":
            return {"id": record.get("contactId"), "firstName": "Contact"}
        user = record.get("userId") or record.get("companyLeadUserId") or 1
        return {"id": user, "displayName": f"{FIRST_NAMES[(user - 1) % 8]} Agency"}

    def _shape(self, view: View, record: dict, wanted: list[str]) -> dict:
        if self.wrapped or view.name in self.wrapper_keys:
            key = self.wrapper_keys.get(view.name, view.entity_key)
            return {key: record, **{k: (self._additional(k, record) if k in wanted else None) for k in view.additional}}
        return {**record, **{k: self._additional(k, record) for k in wanted}}

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
        if key not in self.organisations:  # before routing: unknown paths answer the same
            return Reply.text(UNAUTHORISED, status=401, content_type="text/html; charset=UTF-8")
        routes = {("POST", "/v2/search"): self._search, ("GET", "/v2/search/setup"): self._search_setup,
                  ("GET", "/v2/report/setup"): self._report_setup, ("POST", "/v2/report"): self._report,
                  ("GET", "/v2/users"): lambda r: self.records("users"),
                  ("GET", "/v2/organisation"): lambda r: {
                      "name": self.organisations[key], "domain": "demo", "address": "1 Demo Street",
                      "currency": {"id": "AUD", "name": "Australian Dollar", "symbol": "$"},
                      "country": {"id": "AU", "name": "Australia"}}}
        route = routes.get((request.method, request.path.rstrip("/")))
        if route is None:
            return Reply.text("Not Found", status=404)
        admitted = self._admit(key)
        if isinstance(admitted, Reply):
            return admitted
        try:
            result = route(request)
        except BadRequest as error:
            return Reply.text(str(error), status=400, delay=self.processing_seconds + admitted)
        return Reply.json(result, delay=self.processing_seconds + admitted)

    def _filters(self, view: View) -> list[dict]:
        return [{"selector": s.selector, "name": s.selector.replace("_", " ").title(),
                 "description": f"{s.filter_type} filter on {s.field}", "filterType": s.filter_type}
                for s in self.selectors(view)]

    def _search_setup(self, request: Request) -> dict:
        view = self._view(request)
        return {"filters": self._filters(view), "additionalData": list(view.additional),
                "sortColumns": [s.selector for s in self.selectors(view)]}

    def _report_setup(self, request: Request) -> dict:
        view = self._view(request, report=True)
        return {"groupingOptions": list(view.grouping), "statistics": list(view.statistics),
                "filters": self._filters(view),
                "dateFieldOptions": [s.selector for s in self.selectors(view) if s.filter_type == "Date"]}

    def _body(self, request: Request) -> dict:
        try:
            body = request.json()
        except ValueError:
            raise BadRequest("the body must be JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _query(self, view: View, text: Any) -> tuple[Query | None, dict[str, Selector]]:
        selectors = {s.selector: s for s in self.selectors(view)}
        if not isinstance(text, str):
            raise BadRequest("query must be a string")
        if not text.strip():
            return None, selectors
        try:
            tree = parse(text)
        except QuerySyntaxError as error:
            raise BadRequest(f"invalid query: {error}") from None
        for comparison in comparisons(tree):
            selector = selectors.get(comparison.selector)
            if selector is None:
                raise BadRequest(f"unknown selector {comparison.selector!r} for search_view {view.name}")
            values = comparison.value if isinstance(comparison.value, tuple) else (comparison.value,)
            for value in values:
                self._typed(selector, value)
        return tree, selectors

    @staticmethod
    def _typed(selector: Selector, value: str) -> Any:
        if selector.filter_type == "Date":
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                raise BadRequest(f"{selector.selector} compares dates: {value!r} is not YYYY-MM-DD") from None
        if selector.filter_type == "Number":
            try:
                return float(value)
            except ValueError:
                raise BadRequest(f"{selector.selector} compares numbers: {value!r} is not one") from None
        if selector.filter_type == "Boolean":
            if value.lower() not in ("true", "false"):
                raise BadRequest(f"{selector.selector} compares booleans: {value!r}")
            return value.lower() == "true"
        return value.lower()

    def _matches(self, tree: Query | None, selectors: dict[str, Selector], record: dict) -> bool:
        if tree is None:
            return True
        if isinstance(tree, And):
            return all(self._matches(part, selectors, record) for part in tree.parts)
        if isinstance(tree, Or):
            return any(self._matches(part, selectors, record) for part in tree.parts)
        selector = selectors[tree.selector]
        raw = _get(record, selector.field)
        negated = tree.operator.startswith("not ") or tree.operator == "!="
        if raw is None:
            return negated
        actual = self._typed(selector, str(raw)[:10] if selector.filter_type == "Date" else
                             (str(raw).lower() if isinstance(raw, bool) else str(raw)))
        values = [self._typed(selector, v) for v in (tree.value if isinstance(tree.value, tuple) else (tree.value,))]
        operator = tree.operator.removeprefix("not ")
        if operator == "contains":
            found = any(str(v) in str(actual) for v in values)
        elif operator == "in":
            found = actual in values
        else:
            value = values[0]
            found = {"=": actual == value, "!=": actual != value, ">": actual > value, ">=": actual >= value,
                     "<": actual < value, "<=": actual <= value}[operator]
            return found
        return not found if negated else found

    def _date_bounds(self, view: View, tree: Query | None, selectors: dict[str, Selector]) -> tuple[dt.date | None, dt.date | None]:
        """Days to generate for a dated view: narrowed by top-level ``and`` comparisons on its date field."""
        first = last = None
        parts = [tree] if isinstance(tree, Comparison) else list(tree.parts) if isinstance(tree, And) else []
        for part in parts:
            if not isinstance(part, Comparison) or selectors[part.selector].field != view.date_field \
                    or isinstance(part.value, tuple):
                continue
            day = dt.date.fromisoformat(part.value)
            if part.operator in (">=", ">", "="):
                bound = day if part.operator != ">" else day + dt.timedelta(days=1)
                first = bound if first is None else max(first, bound)
            if part.operator in ("<=", "<", "="):
                bound = day if part.operator != "<" else day - dt.timedelta(days=1)
                last = bound if last is None else min(last, bound)
        return first, last

    def _selected(self, view: View, tree: Query | None, selectors: dict[str, Selector]) -> list[dict]:
        if view.date_field is not None:
            first, last = self._date_bounds(view, tree, selectors)
            if first is not None and last is not None and first > last:
                return []
            rows = self.records(view.name, first, last)
        else:
            rows = self.records(view.name)
        return [r for r in rows if self._matches(tree, selectors, r)]

    def _search(self, request: Request) -> list[dict]:
        view = self._view(request)
        body = self._body(request)
        if "query" not in body:
            raise BadRequest("query is required")
        tree, selectors = self._query(view, body["query"])
        limit, offset = body.get("limit", MAX_LIMIT), body.get("offset", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise BadRequest("offset must be an integer of at least 0")
        wanted = body.get("additionalData") or []
        if not isinstance(wanted, list) or any(k not in view.additional for k in wanted):
            raise BadRequest(f"additionalData of search_view {view.name} must be among {list(view.additional)}")
        sort_column, ascending = body.get("sortColumn"), body.get("sortAscending", True)
        if sort_column is not None and sort_column not in selectors:
            raise BadRequest(f"unknown sortColumn {sort_column!r}")
        if not isinstance(ascending, bool):
            raise BadRequest("sortAscending must be a boolean")
        self.searches.append({"view": view.name, "query": tree, "limit": limit, "offset": offset,
                              "additionalData": list(wanted)})
        rows = self._selected(view, tree, selectors)
        if sort_column is not None:
            field_name = selectors[sort_column].field
            rows = sorted(rows, key=lambda r: (_get(r, field_name) is None, str(_get(r, field_name)), r["id"]))
        if not ascending:
            rows = rows[::-1]
        return [self._shape(view, r, list(wanted)) for r in rows[offset:offset + limit]]

    # --- report --------------------------------------------------------------------------------
    def _report(self, request: Request) -> dict:
        view = self._view(request, report=True)
        body = self._body(request)
        statistics = body.get("statistics")
        if not isinstance(statistics, list) or not statistics:
            raise BadRequest("statistics: at least one {mode, column} is required")
        for statistic in statistics:
            if not isinstance(statistic, dict) or statistic.get("mode") not in MODES:
                raise BadRequest(f"statistics[].mode must be one of {', '.join(MODES)}")
            if statistic["mode"] != "count" and statistic.get("column") not in view.statistics:
                raise BadRequest(f"statistics[].column must be one of {list(view.statistics)}")
        selectors = {s.selector: s for s in self.selectors(view)}
        start, end, date_field = body.get("startDate"), body.get("endDate"), body.get("dateField")
        if (start or end) and date_field not in [s for s, f in selectors.items() if f.filter_type == "Date"]:
            raise BadRequest("dateField is required with startDate/endDate and must be a date field of the view")
        try:
            first = dt.date.fromisoformat(start) if start else None
            last = dt.date.fromisoformat(end) if end else None
        except (TypeError, ValueError):
            raise BadRequest("startDate and endDate are YYYY-MM-DD") from None
        tree, _ = self._query(view, body.get("query") or "")
        on_own_date = date_field is not None and selectors[date_field].field == view.date_field  # generate those days only
        rows = self.records(view.name, first if on_own_date else None, last if on_own_date else None)
        rows = [r for r in rows if self._matches(tree, selectors, r)]
        day_of = (lambda r: (str(_get(r, selectors[date_field].field) or ""))[:10]) if date_field else (lambda r: "")
        if first or last:
            rows = [r for r in rows if day_of(r) and (not first or day_of(r) >= first.isoformat())
                    and (not last or day_of(r) <= last.isoformat())]
        answer: dict[str, Any] = {"totals": self._figures(view, statistics, rows)}
        group_by = body.get("groupBy")
        if group_by is not None:
            if group_by not in view.grouping:
                raise BadRequest(f"groupBy must be one of {list(view.grouping)}")
            groups: dict[Any, list[dict]] = {}
            for row in rows:
                groups.setdefault(_get(row, view.grouping[group_by]), []).append(row)
            answer["groups"] = [{"key": k, "totals": self._figures(view, statistics, v)}
                                for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))]
        if (request.query.get("time_breakdown") or [""])[-1].lower() == "true" and first and last:
            answer["timeBreakdown"] = [
                {"startDate": a.isoformat(), "endDate": b.isoformat(),
                 "totals": self._figures(view, statistics, [r for r in rows if a.isoformat() <= day_of(r) <= b.isoformat()])}
                for a, b in self._buckets(first, last)]
        return answer

    def _buckets(self, first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
        days = (last - first).days + 1
        if days <= self.report_daily_max_days:
            step = 1
        elif days <= 92:
            step = 7
        else:
            out, cursor = [], first
            while cursor <= last:
                following = (cursor.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
                out.append((cursor, min(last, following - dt.timedelta(days=1))))
                cursor = following
            return out
        return [(first + dt.timedelta(days=n), min(last, first + dt.timedelta(days=n + step - 1))) for n in range(0, days, step)]

    @staticmethod
    def _figures(view: View, statistics: list[dict], rows: list[dict]) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {}
        for statistic in statistics:
            mode = statistic["mode"]
            if mode == "count":
                out["count"] = len(rows)
                continue
            values = [float(v) for v in (_get(r, view.statistics[statistic["column"]]) for r in rows) if v is not None]
            name = f"{mode}_{statistic['column']}"
            if mode == "sum":
                out[name] = round(sum(values), 4)
            elif not values:
                out[name] = None
            elif mode == "average":
                out[name] = round(sum(values) / len(values), 4)
            elif mode == "min":
                out[name] = min(values)
            elif mode == "max":
                out[name] = max(values)
            else:
                mean = sum(values) / len(values)
                out[name] = round(math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)), 4)
        return out


def pages_needed(records: int, page_size: int = MAX_LIMIT) -> int:
    """Requests a paged search needs to read ``records``: a short (possibly empty) last page ends it."""
    return math.floor(records / page_size) + 1


def snake_record(record: dict) -> dict:
    """A served record with snake_case keys (how the warehouse names the columns)."""
    return {_snake(k): v for k, v in record.items()}
