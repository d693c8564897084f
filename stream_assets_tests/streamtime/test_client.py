"""The Streamtime client against the emulator: every entity, additional data, paging, statistics, errors."""

import datetime as dt

import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiResponseError
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.client import Series, StreamtimeClient
from stream_assets.streamtime.emulator import pages_needed
from stream_assets.streamtime.entities import BY_NAME, ENTITIES
from stream_assets_tests.conftest import STREAMTIME_KEY

WEEK = TimeWindow.for_days("2026-03-02", "2026-03-08")


@pytest.fixture
def client(streamtime) -> StreamtimeClient:
    return StreamtimeClient(STREAMTIME_KEY, streamtime.base_url)


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.name)
def test_every_entity_matches_the_emulators_records(streamtime, client, entity):
    window = WEEK if entity.partitioned else None
    rows = client.rows(entity, window)
    if entity.search_view is None:
        assert [r["id"] for r in rows] == [u["id"] for u in streamtime.users()]
        assert streamtime.requests[-1].path == "/v2/users"
        return
    expected = streamtime.records(entity.search_view, WEEK.first_day if window else None, WEEK.last_day if window else None)
    assert [r["id"] for r in rows] == [r["id"] for r in expected] and rows
    request = streamtime.requests[0]
    assert request.path == "/v2/search" and request.query["search_view"] == [str(entity.search_view)]
    assert request.header("Authorization") == f"Bearer {STREAMTIME_KEY}"
    assert request.json()["maxResults"] == 1000
    if entity.partitioned:
        assert {str(r[entity.date_field])[:10] for r in rows} <= {str(d.first_day) for d in WEEK.days()}


def test_only_the_additional_data_the_asset_stores_is_requested(streamtime, client):
    rows = client.rows(BY_NAME["logged_times"], WEEK)
    assert streamtime.requests[-1].query["additional_data"] == ["jobItem"]
    assert all(r["job_item_name"] for r in rows)
    client.rows(BY_NAME["invoices"], WEEK)
    assert "additional_data" not in streamtime.requests[-1].query
    results = list(client.search(BY_NAME["contacts"], additional=["company", "companyLeadUser"]))
    assert streamtime.requests[-1].query["additional_data"] == ["company,companyLeadUser"]
    assert all(r.additional["companyLeadUser"] is not None for r in results)
    plain = list(client.search(BY_NAME["contacts"], additional=[]))
    assert all(r.additional == {} for r in plain)
    raw = __import__("requests").post(f"{streamtime.base_url}/search", params={"search_view": 13},
                                      json={"filterGroupCollection": {"conditionMatchTypeId": 1, "filterGroups": []}},
                                      headers={"Authorization": f"Bearer {STREAMTIME_KEY}"}, timeout=10).json()
    assert raw[0]["company"] is None and raw[0]["companyLeadUser"] is None  # not requested: null


def test_paging_reads_to_the_end_in_the_fewest_pages(streamtime, client):
    entity = BY_NAME["job_item_users"]
    records = len(streamtime.records(17))
    assert records > 2000
    rows = client.rows(entity)
    assert len(rows) == records and len({r["id"] for r in rows}) == records
    assert len(streamtime.requests) == pages_needed(records)
    assert [r.json()["offset"] for r in streamtime.requests] == [1000 * n for n in range(pages_needed(records))]


def test_date_filter_bounds_are_inclusive_days(streamtime, client):
    rows = client.rows(BY_NAME["logged_times"], TimeWindow.for_days("2026-03-03"))
    assert {r["date"] for r in rows} == {dt.date(2026, 3, 3)}
    group = streamtime.requests[-1].json()["filterGroupCollection"]["filterGroupCollections"][0]["filterGroups"][0]
    assert group["filterGroupTypeId"] == 5
    assert group["filters"] == [{"valueMatchTypeId": 38, "value": "2026-03-03"}, {"valueMatchTypeId": 39, "value": "2026-03-03"}]


def test_time_series_brings_several_sources_in_one_request(streamtime, client):
    answer = client.time_series([Series("minutes", 8, "minutes", "sum"), Series("invoices", 10,
                                 "invoiceCurrencyTotalAmountExTax", "all")], WEEK)
    assert len(streamtime.requests) == 1
    logged = streamtime.records(8, WEEK.first_day, WEEK.last_day)
    assert sum(p["sum"] for p in answer["minutes"]) == sum(r["minutes"] for r in logged)
    invoices = streamtime.records(10, WEEK.first_day, WEEK.last_day)
    assert sum(p["count"] for p in answer["invoices"]) == len(invoices)
    assert {"count", "sum", "average"} <= set(answer["invoices"][0])


def test_column_series_groups_by_a_column(streamtime, client):
    answer = client.column_series([Series("minutes", 8, "minutes", "sum")], WEEK, group_by="userId")
    logged = streamtime.records(8, WEEK.first_day, WEEK.last_day)
    by_user = {c["key"]: c["sum"] for c in answer["minutes"]}
    assert by_user == {u: sum(r["minutes"] for r in logged if r["userId"] == u) for u in {r["userId"] for r in logged}}


def test_errors_carry_status_and_message_never_the_key(streamtime):
    with pytest.raises(ApiResponseError) as caught:
        list(StreamtimeClient("wrong-key", streamtime.base_url).search(BY_NAME["companies"]))
    assert caught.value.status == 401 and "invalid API key" in str(caught.value)
    assert "wrong-key" not in str(caught.value)
    with pytest.raises(ApiResponseError, match="maxResults") as caught:
        list(StreamtimeClient(STREAMTIME_KEY, streamtime.base_url).search(BY_NAME["companies"], page_size=5000))
    assert caught.value.status == 400


@pytest.mark.parametrize(("reply", "message"), [
    (Reply.text("<html>Service unavailable</html>", content_type="text/html"), "HTML"),
    (Reply.json({"searchResults": []}), "JSON array"),
    (Reply.json([{"company": None}]), "'company' object"),
    (Reply.json([{"company": {"id": "twelve", "name": "x"}}]), "Company field id"),
    (Reply.json({"errors": ["filterGroups is required"]}, status=400), "filterGroups is required"),
])
def test_bad_answers_raise_typed_errors(streamtime, client, reply, message):
    streamtime.fail_next(reply)
    with pytest.raises((ApiPayloadError, ApiResponseError), match=message):
        client.rows(BY_NAME["companies"])


def test_a_429_is_honoured_and_counted(streamtime):
    streamtime.request_limits = __import__("stream_assets.core.ratelimit", fromlist=["x"]).parse_budgets("2/0.5", "requests")
    slept = []
    client = StreamtimeClient(STREAMTIME_KEY, streamtime.base_url, sleep=lambda s: (slept.append(s), __import__("time").sleep(s)))
    for _ in range(3):
        client.organisation()
    assert client.throttled == 1 and streamtime.counters["throttled"] == 1
    assert slept == [1.0]  # the Retry-After the emulator sent (whole seconds)


def test_jobs_are_searched_a_day_wider_and_kept_by_their_utc_timestamp(streamtime, client):
    window = TimeWindow.for_days("2026-03-03")
    rows = client.rows(BY_NAME["jobs"], window)
    group = streamtime.requests[-1].json()["filterGroupCollection"]["filterGroupCollections"][0]["filterGroups"][0]
    assert [f["value"] for f in group["filters"]] == ["2026-03-02", "2026-03-04"]
    expected = [j["id"] for j in streamtime.records(7, dt.date(2026, 3, 3), dt.date(2026, 3, 3))]
    assert [r["id"] for r in rows] == expected and rows
    assert all(window.start <= r["job_created_datetime"] < window.end for r in rows)
