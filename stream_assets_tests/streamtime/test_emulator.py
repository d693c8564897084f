"""The Streamtime emulator against the reference (shared/reference/streamtime-v2.md), with raw HTTP: routes,
the plain-text 401, the query language and its 400s, setups, record shapes and /report."""

import datetime as dt

import pytest
import requests

from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets.streamtime.query import Comparison
from stream_assets_tests.conftest import STREAMTIME_KEY

AUTH = {"Authorization": f"Bearer {STREAMTIME_KEY}"}


def post(emulator, path, body, headers=AUTH, **params):
    return requests.post(f"{emulator.base_url}/{path}", params=params, json=body, headers=headers, timeout=10)


def get(emulator, path, headers=AUTH, **params):
    return requests.get(f"{emulator.base_url}/{path}", params=params, headers=headers, timeout=10)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": STREAMTIME_KEY}])
@pytest.mark.parametrize("path", ["organisation", "search/setup", "definitely-not-a-path"])
def test_unauthorised_is_the_43_byte_plain_sentence_even_for_unknown_paths(streamtime, headers, path):
    answer = get(streamtime, path, headers=headers, search_view="time")
    assert answer.status_code == 401 and answer.content == b"You are not authorised to make this request"
    assert len(answer.content) == 43 and answer.headers["Content-Type"] == "text/html; charset=UTF-8"


def test_an_authenticated_unknown_path_is_a_404(streamtime):
    assert get(streamtime, "definitely-not-a-path").status_code == 404


def test_search_setup_lists_filters_additional_data_and_sort_columns(streamtime):
    setup = get(streamtime, "search/setup", search_view="time").json()
    assert set(setup) == {"filters", "additionalData", "sortColumns"}
    assert {"selector", "name", "description", "filterType"} == set(setup["filters"][0])
    assert {f["selector"]: f["filterType"] for f in setup["filters"]}["logged_time_date"] == "Date"
    assert "jobItem" in setup["additionalData"]
    report = get(streamtime, "report/setup", search_view="invoices").json()
    assert set(report) == {"groupingOptions", "statistics", "filters", "dateFieldOptions"}
    assert "invoice_date" in report["dateFieldOptions"]
    assert get(streamtime, "report/setup", search_view="job_phases").status_code == 400  # not a report view


def test_search_follows_the_query_and_pages(streamtime):
    query = 'logged_time_date >= "2026-03-02" and logged_time_date <= "2026-03-03" and (user_id = "1" or user_id = "2")'
    records = post(streamtime, "search", {"query": query, "limit": 5, "offset": 2}, search_view="time").json()
    expected = [r for r in streamtime.records("time", dt.date(2026, 3, 2), dt.date(2026, 3, 3)) if r["userId"] in (1, 2)]
    assert records == expected[2:7]
    assert streamtime.searches[-1]["query"].parts[2].parts[0] == Comparison("user_id", "=", "1")
    statuses = post(streamtime, "search", {"query": 'job_status in ["in play", "PAUSED"] and job_name contains "mar 03"'},
                    search_view="jobs").json()
    assert statuses and all(j["jobStatus"]["name"] in ("In Play", "Paused") and "Mar 03" in j["name"] for j in statuses)
    everything = post(streamtime, "search", {"query": ""}, search_view="companies").json()
    assert [c["id"] for c in everything] == list(range(1, 26))
    newest = post(streamtime, "search", {"query": "", "sortColumn": "company_name", "sortAscending": False, "limit": 1},
                  search_view="companies").json()
    assert newest[0]["name"] == "Client 9 Pty Ltd"


@pytest.mark.parametrize(("body", "view", "why"), [
    ({"query": 'nope = "1"'}, "time", "unknown selector"),
    ({"query": "user_id = 1"}, "time", "invalid query"),
    ({"query": "user_id = 'In Play'"}, "time", "invalid query"),
    ({"query": 'logged_time_date >= "March"'}, "time", "YYYY-MM-DD"),
    ({"query": "", "limit": 1001}, "time", "limit"),
    ({"query": "", "limit": 0}, "time", "limit"),
    ({"query": "", "offset": -1}, "time", "offset"),
    ({"limit": 10}, "time", "query is required"),
    ({"query": "", "additionalData": ["invoice"]}, "time", "additionalData"),
    ({"query": "", "sortColumn": "nope"}, "time", "sortColumn"),
    ({"query": ""}, "logged_times", "search_view"),
    ({"query": ""}, "8", "search_view"),
])
def test_bad_searches_are_400s_with_a_sentence(streamtime, body, view, why):
    answer = post(streamtime, "search", body, search_view=view)
    assert answer.status_code == 400 and why in answer.text


def test_records_come_flat_by_default_and_wrapped_when_configured(streamtime):
    flat = post(streamtime, "search", {"query": "", "additionalData": ["company"]}, search_view="contacts").json()[0]
    assert flat["id"] == 1 and flat["company"]["name"].startswith("Client") and "companyLeadUser" not in flat
    with StreamtimeEmulator({STREAMTIME_KEY: "W"}, wrapped=True) as wrapped:
        item = post(wrapped, "search", {"query": "", "additionalData": ["company"]}, search_view="contacts").json()[0]
    assert set(item) == {"contact", "company", "companyLeadUser"} and item["companyLeadUser"] is None
    assert item["contact"]["id"] == 1 and item["company"]["name"].startswith("Client")


def test_records_use_the_references_field_names(streamtime):
    quote = streamtime.records("quotes", dt.date(2026, 3, 2), dt.date(2026, 3, 6))[0]
    assert {"quoteNumber", "quoteName", "createdUser"} <= set(quote) and "number" not in quote
    expense = streamtime.records("expenses", dt.date(2026, 3, 2), dt.date(2026, 3, 6))[0]
    assert isinstance(expense["loggedExpenseStatus"], str) and isinstance(expense["loggedExpenseStatusId"], int)
    users = streamtime.records("users")
    assert "role" not in users[0] and {u["roleId"] for u in users} >= {None, 1}
    assert {"totalPlannedMinutes", "totalLoggedMinutes"} <= set(streamtime.records("job_item_users")[0])
    assert isinstance(streamtime.records("invoice_line_items")[0]["quantity"], str)


def test_report_counts_sums_and_breaks_down(streamtime):
    body = {"statistics": [{"mode": "count"}, {"mode": "sum", "column": "logged_time_minutes"}],
            "startDate": "2026-03-02", "endDate": "2026-03-08", "dateField": "logged_time_date"}
    answer = post(streamtime, "report", body, search_view="time", time_breakdown="true").json()
    records = streamtime.records("time", dt.date(2026, 3, 2), dt.date(2026, 3, 8))
    assert answer["totals"] == {"count": len(records), "sum_logged_time_minutes": sum(r["minutes"] for r in records)}
    assert [b["startDate"] for b in answer["timeBreakdown"]] == [f"2026-03-0{d}" for d in range(2, 9)]
    assert sum(b["totals"]["count"] for b in answer["timeBreakdown"]) == len(records)
    long = post(streamtime, "report", {**body, "startDate": "2026-01-01", "endDate": "2026-03-31"}, search_view="time",
                time_breakdown="true").json()
    assert long["timeBreakdown"][0] == {**long["timeBreakdown"][0], "startDate": "2026-01-01", "endDate": "2026-01-07"}
    grouped = post(streamtime, "report", {**body, "groupBy": "user_id"}, search_view="time").json()
    assert sum(g["totals"]["count"] for g in grouped["groups"]) == len(records)


@pytest.mark.parametrize(("body", "why"), [
    ({"statistics": []}, "statistics"),
    ({"statistics": [{"mode": "median", "column": "logged_time_minutes"}]}, "mode"),
    ({"statistics": [{"mode": "sum"}]}, "column"),
    ({"statistics": [{"mode": "count"}], "startDate": "2026-03-02"}, "dateField"),
    ({"statistics": [{"mode": "count"}], "groupBy": "colour"}, "groupBy"),
])
def test_bad_reports_are_400s(streamtime, body, why):
    answer = post(streamtime, "report", body, search_view="time")
    assert answer.status_code == 400 and why in answer.text


def test_every_request_counts_against_the_limits():
    with StreamtimeEmulator({STREAMTIME_KEY: "L"}, request_limits="3/60") as emulator:
        answers = [get(emulator, "search/setup", search_view="time").status_code for _ in range(2)]
        answers += [post(emulator, "search", {"query": ""}, search_view="users").status_code for _ in range(2)]
        assert answers == [200, 200, 200, 429]
        assert emulator.counters == {"requests": 4, "processed": 3, "throttled": 1, "delayed": 0}
