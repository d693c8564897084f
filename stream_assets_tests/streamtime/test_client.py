"""The Streamtime client against the emulator: every view, records flat and wrapped, selectors from the setup,
tolerant fields, paging, /report statistics and errors."""

import datetime as dt
import json
import time

import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiRequestError, ApiResponseError, ApiThrottledError
from stream_assets.core.ratelimit import parse_budgets
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.client import StreamtimeClient, StreamtimeCredentialError
from stream_assets.streamtime.emulator import StreamtimeEmulator, pages_needed
from stream_assets.streamtime.entities import BY_NAME, ENTITIES
from stream_assets.streamtime.query import And, Comparison
from stream_assets.streamtime.report import Statistic
from stream_assets_tests.conftest import STREAMTIME_KEY
from stream_assets_tests.streamtime.expect import expected_rows, key_rows

WEEK = TimeWindow.for_days("2026-03-02", "2026-03-08")


@pytest.fixture
def client(streamtime) -> StreamtimeClient:
    return StreamtimeClient(STREAMTIME_KEY, streamtime.base_url)


def assert_reads_every_entity(emulator, client):
    for entity in ENTITIES:
        window = WEEK if entity.partitioned else None
        emulator.clear()
        rows = client.rows(entity, window)
        expected = expected_rows(emulator, entity, *((window.first_day, window.last_day) if window else ()))
        assert rows and key_rows(rows, entity) == expected, entity.name
        search = emulator.searches[0]
        assert search["view"] == entity.view and search["limit"] == 1000 and search["offset"] == 0
        assert search["additionalData"] == list(entity.additional)
        if entity.partitioned and entity.name != "jobs":
            selector = entity.date_selectors[0]
            assert search["query"] == And((Comparison(selector, ">=", "2026-03-02"), Comparison(selector, "<=", "2026-03-08")))
        elif not entity.partitioned:
            assert search["query"] is None  # the empty query: every record
        request = emulator.requests_to("/v2/search")[-1]
        assert request.query["search_view"] == [entity.view]
        assert request.header("Authorization") == f"Bearer {STREAMTIME_KEY}"
        kept = [json.loads(r["record"]) for r in rows]  # as it came: flat, or wrapped under the entity key
        assert [k.get(entity.record_key, k)["id"] for k in kept] == [r["id"] for r in rows]


def test_every_entity_matches_the_emulators_records_flat(streamtime, client):
    assert_reads_every_entity(streamtime, client)
    # One setup per view for the life of the client, however many reads.
    client.rows(BY_NAME["invoices"], WEEK)
    assert len(client._search_setups) == len(ENTITIES)


def test_every_entity_matches_the_emulators_records_wrapped():
    with StreamtimeEmulator({STREAMTIME_KEY: "Wrapped"}, seed=8, wrapped=True) as emulator:
        client = StreamtimeClient(STREAMTIME_KEY, emulator.base_url)
        assert_reads_every_entity(emulator, client)
        logged = client.read(BY_NAME["logged_times"], WEEK)
        assert all(r["job_item_name"] for r in logged.rows)
        raw = json.loads(logged.rows[0]["record"])
        assert set(raw) == {"loggedTime", "jobItem", "job", "user"} and raw["job"] is None  # kept as it came


def test_records_wrapped_under_a_name_we_did_not_guess_are_read_exactly():
    with StreamtimeEmulator({STREAMTIME_KEY: "W"}, seed=8, wrapper_keys={"time": "timeEntry", "jobs": "project"}) as emulator:
        client = StreamtimeClient(STREAMTIME_KEY, emulator.base_url)
        for name, wrapper in (("logged_times", "timeEntry"), ("jobs", "project")):
            entity = BY_NAME[name]
            rows = client.rows(entity, WEEK)
            assert rows and key_rows(rows, entity) == expected_rows(emulator, entity, WEEK.first_day, WEEK.last_day)
            assert all(json.loads(r["record"])[wrapper]["id"] == r["id"] for r in rows)
        logged = client.read(BY_NAME["logged_times"], WEEK)
        assert all(r["job_item_name"] for r in logged.rows)  # the additional data asked for is not the record


@pytest.mark.parametrize("item, keys", [
    ({"timeEntry": {"id": 1, "date": "2026-03-02"}, "job": {"id": 7}, "jobItem": None}, r"'job', 'jobItem', 'timeEntry'.*'timeEntry', 'job'"),
    ({"timeEntry": None, "jobItem": {"id": 3, "name": "Build"}}, r"'jobItem', 'timeEntry'.*no object"),
])
def test_an_ambiguous_wrapper_is_refused_naming_the_keys_it_saw(streamtime, client, item, keys):
    client.search_setup("time")
    streamtime.fail_next(Reply.json([item]), path_contains="/v2/search")
    with pytest.raises(ApiPayloadError, match=keys) as caught:
        client.rows(BY_NAME["logged_times"], WEEK)
    assert caught.value.api == "Streamtime" and caught.value.endpoint == "search?search_view=time"


def test_job_numbers_come_as_integers_text_or_null(streamtime, client):
    numbers = [j["number"] for j in streamtime.records("jobs", WEEK.first_day, WEEK.last_day)]
    assert None in numbers and any(isinstance(n, int) for n in numbers)  # the emulator serves both, as public types say
    rows = client.rows(BY_NAME["jobs"], WEEK)
    by_id = {r["id"]: r["number"] for r in rows}
    assert by_id == {j["id"]: (None if j["number"] is None else str(j["number"]))
                     for j in streamtime.records("jobs", WEEK.first_day, WEEK.last_day)}
    fresh = StreamtimeClient(STREAMTIME_KEY, streamtime.base_url)
    fresh.search_setup("jobs")
    job = {"id": 5, "name": 42, "jobCreatedDatetime": "2026-03-03T10:00:00Z"}
    streamtime.fail_next(Reply.json([{**job, "number": "J-0005"}, {**job, "id": 6, "number": 6},
                                     {**job, "id": 7, "number": None}, {**job, "id": 8}]), path_contains="/v2/search")
    streamtime.fail_next(Reply.json([]), path_contains="/v2/search")  # the probe after a short page
    rows = fresh.rows(BY_NAME["jobs"], WEEK)
    assert [(r["id"], r["number"], r["name"]) for r in rows] == [(5, "J-0005", "42"), (6, "6", "42"), (7, None, "42"),
                                                                 (8, None, "42")]


def test_only_id_and_the_date_are_required_of_a_record(streamtime, client):
    client.search_setup("time")
    streamtime.fail_next(Reply.json([{"id": 1, "date": "2026-03-02"}, {"id": 2, "date": "2026-03-03", "userId": None,
                                                                       "minutes": None, "jobId": None}]),
                         path_contains="/v2/search")
    streamtime.fail_next(Reply.json([]), path_contains="/v2/search")  # the probe after a short page
    rows = client.rows(BY_NAME["logged_times"], WEEK)
    assert [(r["id"], r["user_id"], r["job_id"], r["minutes"]) for r in rows] == [(1, None, None, None), (2, None, None, None)]
    streamtime.fail_next(Reply.json([{"userId": 3, "date": "2026-03-02"}]), path_contains="/v2/search")
    with pytest.raises(ApiPayloadError, match=r"neither a flat record \(no 'id'\).*keys \['date', 'userId'\]"):
        client.rows(BY_NAME["logged_times"], WEEK)
    streamtime.fail_next(Reply.json([{"id": 4, "userId": 3}]), path_contains="/v2/search")
    with pytest.raises(ApiPayloadError, match="key column.*date"):
        client.rows(BY_NAME["logged_times"], WEEK)


def test_users_carry_names_working_hours_labels_and_their_status_id(streamtime, client):
    rows = {r["id"]: r for r in client.rows(BY_NAME["users"])}
    served = {u["id"]: u for u in streamtime.records("users")}
    assert rows.keys() == served.keys()
    for user_id, row in rows.items():
        user = served[user_id]
        assert (row["first_name"], row["last_name"]) == (user["firstName"], user["lastName"])
        assert (row["user_status"], row["user_status_id"]) == (user["userStatus"]["name"], user["userStatus"]["id"])
        assert row["hours_worked_monday"] == user["hoursWorkedMonday"] and row["hours_worked_sunday"] == user["hoursWorkedSunday"]
        assert json.loads(row["labels"]) == user["labels"]
    assert {r["user_status"] for r in rows.values()} == {"Active", "Inactive"}


def test_setup_is_read_once_per_view_and_run(streamtime, client):
    client.rows(BY_NAME["logged_times"], WEEK)
    client.rows(BY_NAME["logged_times"], TimeWindow.for_days("2026-03-09"))
    setups = streamtime.requests_to("/search/setup")
    assert [r.query["search_view"] for r in setups] == [["time"]]


def test_selector_case_1_the_first_preferred_name_listed(streamtime, client):
    # invoices lists two Date filters (invoice_date, invoice_due_date): the preferred name wins.
    assert client.date_selector(BY_NAME["invoices"]) == "invoice_date"


def test_selector_case_2_the_views_only_date_filter():
    with StreamtimeEmulator({STREAMTIME_KEY: "Other"}, date_filters={"time": ("entry_day",)}) as emulator:
        client = StreamtimeClient(STREAMTIME_KEY, emulator.base_url)
        rows = client.rows(BY_NAME["logged_times"], WEEK)
        assert len(rows) == len(emulator.records("time", WEEK.first_day, WEEK.last_day))
        assert emulator.searches[0]["query"] == And((Comparison("entry_day", ">=", "2026-03-02"),
                                                     Comparison("entry_day", "<=", "2026-03-08")))


def test_selector_case_3_a_clear_error_then_the_setting_picks_one():
    with StreamtimeEmulator({STREAMTIME_KEY: "Other"}, date_filters={"time": ("entry_day", "approved_day")}) as emulator:
        with pytest.raises(ApiRequestError) as caught:
            StreamtimeClient(STREAMTIME_KEY, emulator.base_url).rows(BY_NAME["logged_times"], WEEK)
        message = str(caught.value)
        assert "entry_day" in message and "approved_day" in message and "time" in message
        assert "date_selectors" in message and "logged_times" in message and "STREAMTIME_DATE_SELECTORS" in message
        assert [r.path for r in emulator.requests] == ["/v2/search/setup"]  # no search was sent
        chosen = StreamtimeClient(STREAMTIME_KEY, emulator.base_url, date_selectors={"logged_times": "approved_day"})
        assert chosen.rows(BY_NAME["logged_times"], WEEK)
        assert emulator.searches[-1]["query"].parts[0].selector == "approved_day"
        with pytest.raises(ApiRequestError, match="not a selector"):
            StreamtimeClient(STREAMTIME_KEY, emulator.base_url, date_selectors={"logged_times": "nope"}).rows(
                BY_NAME["logged_times"], WEEK)


def test_additional_data_is_checked_against_the_setup(streamtime, client):
    streamtime.fail_next(Reply.json({"filters": [{"selector": "logged_time_date", "filterType": "Date"}],
                                     "additionalData": ["job"], "sortColumns": []}), path_contains="/search/setup")
    read = client.read(BY_NAME["logged_times"], WEEK)
    assert read.additional_data_unavailable == ["jobItem"]
    assert streamtime.searches[-1]["additionalData"] == [] and "additionalData" not in streamtime.requests[-1].json()
    assert all(r["job_item_name"] is None for r in read.rows) and read.rows


def test_unknown_fields_are_kept_and_a_field_in_an_unexpected_format_becomes_null_and_is_counted():
    overrides = {"invoices": {"dueDate": "next week", "invoiceStatus": "Paid", "exchangeRate": "about 1.2",
                              "brandNewField": {"a": 1}}}
    with StreamtimeEmulator({STREAMTIME_KEY: "Odd"}, seed=8, record_overrides=overrides) as emulator:
        read = StreamtimeClient(STREAMTIME_KEY, emulator.base_url).read(BY_NAME["invoices"], WEEK)
    assert read.rows and all(r["due_date"] is None and r["invoice_status"] is None for r in read.rows)
    assert read.fields_not_understood == {"due_date": len(read.rows), "invoice_status": len(read.rows),
                                          "exchange_rate": len(read.rows)}
    assert all(r["exchange_rate"] is None for r in read.rows)
    assert all(json.loads(r["record"])["brandNewField"] == {"a": 1} for r in read.rows)
    assert all(r["invoice_currency_balance"] is not None for r in read.rows)


def test_a_non_finite_number_anywhere_refuses_the_page():
    # NaN is not JSON: the transport refuses the whole answer (core/http.py), it is never stored as NULL.
    overrides = {"invoices": {"exchangeRate": float("nan")}}
    with StreamtimeEmulator({STREAMTIME_KEY: "Odd"}, seed=8, record_overrides=overrides) as emulator:
        with pytest.raises(ApiPayloadError, match="NaN") as caught:
            StreamtimeClient(STREAMTIME_KEY, emulator.base_url).read(BY_NAME["invoices"], WEEK)
    assert caught.value.api == "Streamtime" and caught.value.endpoint == "search?search_view=invoices"


def test_a_key_column_that_cannot_be_read_is_refused(streamtime, client):
    client.search_setup("invoices")
    streamtime.fail_next(Reply.json([{"id": 1, "number": "INV-1", "jobId": "job one", "invoiceDate": "2026-03-02"}]),
                         path_contains="/v2/search")
    with pytest.raises(ApiPayloadError, match="key column.*jobId"):
        client.rows(BY_NAME["invoices"], WEEK)


def test_paging_reads_to_the_end_in_the_fewest_pages(streamtime, client):
    entity = BY_NAME["job_item_users"]
    records = len(streamtime.records("job_item_users"))
    assert records > 2000
    rows = client.rows(entity)
    assert len(rows) == records and len({r["id"] for r in rows}) == records
    assert [r.path for r in streamtime.requests] == ["/v2/search/setup"] + ["/v2/search"] * pages_needed(records)
    assert [s["offset"] for s in streamtime.searches] == [1000 * n for n in range(pages_needed(records))]


def test_the_same_key_twice_is_stored_once_when_identical_and_refused_when_not(streamtime, client):
    client.search_setup("companies")
    company = {"id": 1, "name": "Client 1"}
    # Each answer is one short page, then the empty page that proves the server does not cap pages.
    streamtime.fail_next(Reply.json([company, dict(company)]), path_contains="/v2/search")
    streamtime.fail_next(Reply.json([]), path_contains="/v2/search")
    assert len(client.rows(BY_NAME["companies"])) == 1
    streamtime.fail_next(Reply.json([company, {"id": 1, "name": "Client One"}]), path_contains="/v2/search")
    streamtime.fail_next(Reply.json([]), path_contains="/v2/search")
    with pytest.raises(ApiPayloadError, match="came twice"):
        client.rows(BY_NAME["companies"])


def test_jobs_are_searched_a_day_wider_and_kept_by_their_utc_timestamp(streamtime, client):
    window = TimeWindow.for_days("2026-03-03")
    rows = client.rows(BY_NAME["jobs"], window)
    assert streamtime.searches[-1]["query"] == And((Comparison("job_created_date", ">=", "2026-03-02"),
                                                    Comparison("job_created_date", "<=", "2026-03-04")))
    expected = [j["id"] for j in streamtime.records("jobs", dt.date(2026, 3, 3), dt.date(2026, 3, 3))]
    assert [r["id"] for r in rows] == expected and rows
    assert all(window.start <= r["job_created_datetime"] < window.end for r in rows)


def test_a_401_is_a_credential_problem_naming_streamtime_and_the_endpoint(streamtime):
    with pytest.raises(StreamtimeCredentialError) as caught:
        StreamtimeClient("wrong-key-do-not-log", streamtime.base_url).rows(BY_NAME["companies"])
    error = caught.value
    assert error.status == 401 and error.api == "Streamtime" and error.endpoint == "search/setup?search_view=companies"
    assert "You are not authorised to make this request" in str(error) and "STREAMTIME_API_KEY" in str(error)
    assert "wrong-key-do-not-log" not in str(error) and not error.transient


def test_other_errors_keep_the_servers_words(streamtime, client):
    client.search_setup("companies")
    with pytest.raises(ApiRequestError, match="limit"):
        list(client.search(BY_NAME["companies"], page_size=1001))
    streamtime.fail_next(Reply.text("query: unknown selector 'x'", status=400), path_contains="/v2/search")
    with pytest.raises(ApiResponseError, match="unknown selector") as caught:
        client.rows(BY_NAME["companies"])
    assert caught.value.status == 400
    streamtime.fail_next(Reply.text(f"bad token {STREAMTIME_KEY} in request", status=400), path_contains="/v2/search")
    with pytest.raises(ApiResponseError, match=r"bad token \*\*\* in request") as caught:
        client.rows(BY_NAME["companies"])
    assert STREAMTIME_KEY not in str(caught.value)


@pytest.mark.parametrize(("reply", "message"), [
    (Reply.text("<html>Service unavailable</html>", content_type="text/html"), "HTML"),
    (Reply.json({"searchResults": []}), "JSON array"),
    (Reply.json(["company"]), "not an object"),
    (Reply.json([{"id": "twelve", "name": "x"}]), "field id"),
])
def test_bad_answers_raise_typed_errors(streamtime, client, reply, message):
    client.search_setup("companies")
    streamtime.fail_next(reply, path_contains="/v2/search")
    with pytest.raises(ApiPayloadError, match=message):
        client.rows(BY_NAME["companies"])


def test_a_setup_without_filters_is_refused(streamtime, client):
    streamtime.fail_next(Reply.json({"additionalData": []}), path_contains="/search/setup")
    with pytest.raises(ApiPayloadError, match="filters"):
        client.rows(BY_NAME["logged_times"], WEEK)


def test_a_429_is_honoured_and_counted(streamtime):
    streamtime.request_limits = parse_budgets("2/0.5", "requests")
    slept = []
    client = StreamtimeClient(STREAMTIME_KEY, streamtime.base_url, sleep=lambda s: (slept.append(s), time.sleep(s)))
    for _ in range(3):
        client.organisation()
    assert client.throttled == 1 and streamtime.counters["throttled"] == 1
    assert slept == [1.0]  # the Retry-After the emulator sent (whole seconds)


@pytest.mark.parametrize("retry_after, waits, why", [("100", [100.0, 100.0, 100.0], "another 100 s would pass the 300 s"),
                                                     (None, [1.0, 2.0, 4.0, 8.0, 16.0], "no more tries"),
                                                     ("0", [0.0] * 5, "no more tries")])
def test_429s_wait_at_most_the_total_time_then_raise_a_transient_typed_error(streamtime, retry_after, waits, why):
    headers = {"Retry-After": retry_after} if retry_after else {}
    streamtime.fail_next(Reply.json({"message": "slow down"}, status=429, headers=headers), times=6)
    slept = []
    client = StreamtimeClient(STREAMTIME_KEY, streamtime.base_url, sleep=slept.append)
    with pytest.raises(ApiThrottledError, match=rf"still throttled after \d answer\(s\) 429 .*{why}.*slow down") as caught:
        client.organisation()
    assert caught.value.transient and caught.value.status == 429
    # At most six answers 429, and waits that add up to the policy's total time (300 s) at most.
    assert slept == waits and len(streamtime.requests) == len(waits) + 1 and sum(slept) <= client.policy.total_seconds


STATS = [Statistic("count"), Statistic("sum", "logged_time_minutes")]


def test_daily_report_uses_buckets_proven_daily(streamtime, client):
    assert client.report_date_field("time", ("logged_time_date",)) == "logged_time_date"
    by_day = client.daily_report("time", STATS, WEEK, "logged_time_date")
    reports = [r for r in streamtime.requests if r.path.endswith("/report") or r.path.endswith("/report/setup")]
    assert len(reports) == 2 and reports[1].query == {"search_view": ["time"], "time_breakdown": ["true"]}
    assert reports[1].json() == {"statistics": [{"mode": "count"}, {"mode": "sum", "column": "logged_time_minutes"}],
                                 "startDate": "2026-03-02", "endDate": "2026-03-08", "dateField": "logged_time_date"}
    for day, (count, minutes) in by_day.items():
        records = streamtime.records("time", day, day)
        assert (count, minutes) == (len(records), sum(r["minutes"] for r in records))


def test_daily_report_asks_day_by_day_when_buckets_are_not_daily():
    with StreamtimeEmulator({STREAMTIME_KEY: "Weekly"}, seed=8, report_daily_max_days=3) as emulator:
        by_day = StreamtimeClient(STREAMTIME_KEY, emulator.base_url).daily_report("time", STATS, WEEK, "logged_time_date")
        reports = [r.json() for r in emulator.requests_to("/v2/report")]
        assert len(reports) == 1 + 7 and [r["startDate"] for r in reports[1:]] == [d.first_day.isoformat() for d in WEEK.days()]
        assert sum(c for c, _ in by_day.values()) == len(emulator.records("time", WEEK.first_day, WEEK.last_day))


def test_an_unreadable_report_is_a_typed_error(streamtime, client):
    streamtime.fail_next(Reply.json({"result": "ok"}), path_contains="/v2/report")
    with pytest.raises(ApiPayloadError, match="cannot read the report answer"):
        client.daily_report("time", STATS, TimeWindow.for_days("2026-03-03"), "logged_time_date")


def test_report_columns_and_date_fields_come_from_the_report_setup(streamtime, client):
    assert client.report_column("invoices", ("invoice_total", "invoice_currency_total_amount_ex_tax")) == \
        "invoice_currency_total_amount_ex_tax"
    with pytest.raises(ApiRequestError, match="statistics of view 'quotes'"):
        client.report_column("quotes", ("quote_total",))
    with pytest.raises(ApiRequestError, match="date field"):
        client.report_date_field("users", ("user_created_date",))
    assert [r.query["search_view"] for r in streamtime.requests_to("/report/setup")] == [["invoices"], ["quotes"], ["users"]]
