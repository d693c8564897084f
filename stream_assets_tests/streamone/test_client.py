"""The StreamOne client against the emulator: SDK signature vectors, every status, paging, timezones,
and item/view as the vendor's own page documents it (archived, the date filter, item-read, durations)."""

import datetime as dt
import itertools
import re
from zoneinfo import ZoneInfo

import pytest
import requests

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiRequestError
from stream_assets.core.errors import IncompleteAnswerError
from stream_assets.streamone.client import PAGE_SIZE, StreamOneClient, StreamOneError, encode, sign, wall_time
from stream_assets.streamone.emulator import Actor, Role, StreamOneEmulator
from stream_assets.streamone.models import Item
from stream_assets_tests.conftest import STREAMONE_APP, STREAMONE_APP_PSK

UTC = dt.timezone.utc
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
FORMAT = "%Y-%m-%d %H:%M:%S"


def client_for(streamone, actor=STREAMONE_APP, psk=STREAMONE_APP_PSK, **kwargs) -> StreamOneClient:
    kwargs.setdefault("sleep", lambda seconds: None)
    return StreamOneClient(actor, psk, streamone.root_url, **kwargs)


# Published SDK test vectors (iOS SDK RequestTest.swift) and the derived session example of reference/apis.md.
USER = {"api": 3, "authentication_type": "user", "format": "json", "user": "user"}


@pytest.mark.parametrize(
    ("key", "params", "arguments", "expected"),
    [
        ("psk", {**USER, "timestamp": 1234}, {}, "a3a030d15fd3faef49fd1340cb474113645628dc"),
        ("psk", {**USER, "timestamp": 5678}, {}, "6e553a65157cadab99a32b9a893e4b87c3c6de4d"),
        ("psk", {**USER, "timestamp": 1234}, {"x": "ABxu233"}, "02b3c66918d4d1cce6f1558ee2470c341dfe40db"),
        ("psk", {**USER, "timestamp": 1234, "account": ["account1", "account2"]}, {}, "a35a4d37e8102113ac34ba1986d34370d59737a1"),
        ("psk", {**USER, "timestamp": 1234}, {"archived": False, "searchtitle": "test"}, "a9bd2d16054ea481b2004627ee3d6748b8fe3d88"),
        ("apppsk", {"api": 3, "application": "application", "authentication_type": "application", "format": "json",
                    "timestamp": 1234}, {}, "588b4aaa105678d5de14b9f87e431c9cc7fe458c"),
        ("apppskskey", {"api": 3, "application": "app1", "authentication_type": "application", "format": "json",
                        "session": "sess1", "timestamp": 1234}, {}, "37a35e2c6877dfb1dcf400c3c37f86f14bca039e"),
    ],
)
def test_sdk_signature_vectors_reproduce_bit_for_bit(key, params, arguments, expected):
    assert sign(key, "/api/item/view", encode(params), encode(arguments)) == expected


def test_the_client_sends_what_the_vectors_describe(streamone):
    client = client_for(streamone, "user", "psk", auth_type="user", timezone=None, clock=lambda: 1234)
    streamone.now = lambda: 1234
    client.call("item", "view", {"limit": 1})
    (request,) = streamone.requests
    assert request.raw_query == ("api=3&authentication_type=user&format=json&timestamp=1234&user=user"
                                 "&signature=" + sign("psk", "/api/item/view", encode(USER | {"timestamp": 1234}), "limit=1"))
    assert request.body == b"limit=1" and request.method == "POST"


def test_the_php_sdk_insertion_order_is_accepted_too(streamone):
    now = int(streamone.now())
    query = f"api=3&format=json&authentication_type=user&timestamp={now}&user=user"
    signature = sign("psk", "/api/item/view", query, "limit=2")
    reply = requests.post(f"{streamone.root_url}/api/item/view?{query}&signature={signature}", data="limit=2",
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10).json()
    assert reply["header"]["status"] == 0 and len(reply["body"]) == 2


def test_application_session_signs_with_psk_plus_session_key(streamone):
    client = client_for(streamone, session_id="sess1", session_key="skey")
    assert client.call("item", "view", {"limit": 1}).header.status == 0
    with pytest.raises(StreamOneError) as caught:
        client_for(streamone, session_id="sess1", session_key="wrong").call("item", "view", {"limit": 1})
    assert caught.value.code == 3


def utc(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC)


def seconds(duration: str) -> float:
    """The emulator's duration text in seconds, read independently of the model's parser."""
    hours, minutes, rest = duration.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def created_between(streamone, first: dt.datetime, last: dt.datetime) -> list[dict]:
    """The emulator's items created in [first, last], both inclusive, archived or not."""
    return [i for i in streamone.items() if first <= i["datecreated"] <= last]


def test_view_pages_until_count_rows_are_read(streamone):
    client = client_for(streamone)
    items = list(client.view("item", Item, {"itemtype": "audio"}, page_size=40))
    expected = [i for i in streamone.items() if i["type"] == "audio" and not i["archived"]]  # hidden by default
    assert len(items) == len(expected) > 100
    assert len(streamone.requests) == -(-len(expected) // 40)
    assert [r.form()["offset"][0] for r in streamone.requests[:3]] == ["0", "40", "80"]
    assert sorted(i.id for i in items) == sorted(i["id"] for i in expected)


def test_view_refuses_rows_running_out_before_the_count(streamone):
    streamone.fail_next(Reply.json({"header": {"status": 0, "statusmessage": "OK", "count": 500}, "body": []}))
    with pytest.raises(IncompleteAnswerError, match="reported 500 rows but served only 0") as caught:
        list(client_for(streamone).view("item", Item))
    assert (caught.value.api, caught.value.endpoint) == ("StreamOne", "item/view")


def test_filters_and_ordering(streamone):
    client = client_for(streamone)
    newest = list(itertools.islice(client.items(), 5))
    assert [i.datecreated for i in newest] == sorted((i.datecreated for i in newest), reverse=True)
    oldest = next(client.items(newest_first=False))
    assert oldest.datecreated == min(i["datecreated"] for i in streamone.items())
    archived = list(client.view("item", Item, {"archived": 1}))
    assert {i.id for i in archived} == {i["id"] for i in streamone.items() if i["archived"]}
    wanted = next(i["title"] for i in streamone.items() if i["type"] == "audio")[:12]  # e.g. "Audio 03 Jun"
    titled = list(client.view("item", Item, {"searchtitle": wanted.lower()}))
    assert titled and all(wanted in i.title for i in titled)


def test_items_created_in_asks_for_the_window_alone_archived_items_included(streamone):
    client = client_for(streamone)
    start, end = utc(2026, 7, 1), utc(2026, 10, 1)
    found = client.items_created_in(start, end)
    expected = [i for i in streamone.items() if start <= i["datecreated"] < end]
    assert [i.id for i in found] == [i["id"] for i in expected]  # oldest first, as asked
    assert [i.archived for i in found] == [i["archived"] for i in expected] and any(i.archived for i in found)
    forms = [r.form() for r in streamone.requests]
    assert all(f["archived"] == [""] and f["mindatecreated"] == ["2026-07-01 00:00:00"]
               and f["maxdatecreated"] == ["2026-10-01 00:00:00"] and f["orderfield"] == ["created"]
               and f["order"] == ["asc"] for f in forms)
    assert [f["offset"] for f in forms] == [[str(n)] for n in range(0, len(forms) * PAGE_SIZE, PAGE_SIZE)]
    served = len(created_between(streamone, start, end))  # what the inclusive filter matches
    assert served > 2 * PAGE_SIZE
    assert client.requests_made == len(streamone.requests) <= -(-served // PAGE_SIZE) + 1


def test_an_item_created_at_the_window_end_is_left_for_the_next_window(streamone):
    client = client_for(streamone)
    at_end = streamone.items()[400]
    start, end = at_end["datecreated"] - dt.timedelta(days=3), at_end["datecreated"]
    found = client.items_created_in(start, end)
    (request,) = streamone.requests
    assert request.form()["maxdatecreated"] == [end.strftime(FORMAT)]  # the API includes the item created then
    assert at_end["id"] not in {i.id for i in found}
    assert [i.id for i in found] == [i["id"] for i in streamone.items() if start <= i["datecreated"] < end]


def test_a_window_costs_one_request_per_hundred_items_plus_one(streamone):
    client = client_for(streamone)
    first = streamone.items()[0]["datecreated"]
    end = streamone.items()[2 * PAGE_SIZE - 1]["datecreated"] + dt.timedelta(seconds=1)
    assert len(client.items_created_in(first, end)) == len(created_between(streamone, first, end)) == 2 * PAGE_SIZE
    assert client.requests_made == 3  # two full pages, then the empty one that proves the end
    empty = client_for(streamone)
    assert empty.items_created_in(first - dt.timedelta(days=30), first - dt.timedelta(days=1)) == []
    assert empty.requests_made == 1


def test_the_date_bounds_are_wall_times_in_the_timezone_asked_for(streamone):
    in_utc = client_for(streamone).items_created_in(utc(2026, 7, 1), utc(2026, 7, 2))
    streamone.clear()
    client = client_for(streamone, timezone="Europe/Amsterdam")
    summer = client.items_created_in(utc(2026, 7, 1), utc(2026, 7, 2))
    winter = client.items_created_in(utc(2026, 11, 1), utc(2026, 11, 2))
    summer_form, winter_form = (r.form() for r in streamone.requests)
    assert "timezone=Europe%2FAmsterdam" in streamone.requests[0].raw_query
    assert summer_form["mindatecreated"] == ["2026-07-01 02:00:00"] and summer_form["maxdatecreated"] == ["2026-07-02 02:00:00"]
    assert winter_form["mindatecreated"] == ["2026-11-01 01:00:00"] and winter_form["maxdatecreated"] == ["2026-11-02 01:00:00"]
    assert [(i.id, i.datecreated) for i in summer] == [(i.id, i.datecreated) for i in in_utc] and summer
    assert [i.id for i in winter] == [i["id"] for i in streamone.items() if utc(2026, 11, 1) <= i["datecreated"] < utc(2026, 11, 2)]


def test_a_bound_in_the_repeated_autumn_hour_moves_outwards_to_an_unambiguous_wall_time():
    london, hour = ZoneInfo("Europe/London"), dt.timedelta(hours=1)
    midnight = utc(2026, 10, 25)  # 01:00 BST; 01:00 GMT comes an hour later
    assert wall_time(midnight, london, outwards=-hour) == "2026-10-25 00:00:00"  # 23:00 UTC the day before
    assert wall_time(midnight, london, outwards=hour) == "2026-10-25 02:00:00"  # 02:00 UTC
    assert wall_time(utc(2026, 10, 26), london, outwards=hour) == "2026-10-26 00:00:00"


def test_a_date_filtered_read_needs_a_known_timezone(streamone):
    for timezone in (None, "Mars/Olympus"):
        with pytest.raises(ApiRequestError, match="needs a known timezone"):
            client_for(streamone, timezone=timezone).items_created_in(utc(2026, 7, 1), utc(2026, 7, 2))
    assert streamone.requests == []


def test_progress_is_reported_every_ten_pages(streamone):
    messages = []
    found = client_for(streamone).items_created_in(utc(2025, 1, 1), utc(2027, 1, 1), progress=messages.append)
    assert len(found) == len(streamone.items()) > 2000
    assert len(messages) == len(found) // 1000 and messages[0].startswith("item/view: 1000 items read, now at 20")


@pytest.mark.parametrize(("archived", "shown"), [
    (None, {False}), ("0", {False}), ("false", {False}), ("", {False, True}), ("1", {True}), ("true", {True})])
def test_archived_absent_or_false_hides_archived_items_empty_shows_both_true_only_archived(streamone, archived, shown):
    window = {"mindatecreated": "2026-06-01 00:00:00", "maxdatecreated": "2026-09-30 23:59:59"}
    items = list(client_for(streamone).view("item", Item, window | ({} if archived is None else {"archived": archived})))
    expected = [i for i in created_between(streamone, utc(2026, 6, 1), utc(2026, 9, 30, 23, 59, 59)) if i["archived"] in shown]
    assert sorted(i.id for i in items) == sorted(i["id"] for i in expected)
    assert {i.archived for i in items} == shown  # the answer says which is which, as a boolean


def test_the_date_filter_is_inclusive_and_read_in_the_requests_timezone(streamone):
    july = [i for i in streamone.items() if (i["datecreated"].year, i["datecreated"].month) == (2026, 7)]
    first, last = july[3]["datecreated"], july[20]["datecreated"]
    bounds = {"archived": "", "mindatecreated": first.astimezone(AMSTERDAM).strftime(FORMAT),
              "maxdatecreated": last.astimezone(AMSTERDAM).strftime(FORMAT)}
    in_amsterdam = list(client_for(streamone, timezone="Europe/Amsterdam").view("item", Item, bounds))
    assert [i.id for i in in_amsterdam] == [i["id"] for i in created_between(streamone, first, last)]
    assert {july[3]["id"], july[20]["id"]} <= {i.id for i in in_amsterdam}  # both bounds are inclusive
    # The same wall times asked in UTC name instants two hours later (CEST is UTC+2).
    in_utc = list(client_for(streamone, timezone="UTC").view("item", Item, bounds))
    two_hours = dt.timedelta(hours=2)
    assert [i.id for i in in_utc] == [i["id"] for i in created_between(streamone, first + two_hours, last + two_hours)]


def test_item_view_needs_the_item_read_token_not_item_view(streamone):
    streamone.users["old-token01"] = Actor("opsk", [Role(frozenset({"item-view", "livestream-view"}))])
    client = client_for(streamone, "old-token01", "opsk", auth_type="user")
    with pytest.raises(StreamOneError) as caught:
        client.call("item", "view", {"limit": 1})
    assert caught.value.code == 4 and "item-read" in str(caught.value)
    assert client.call("livestream", "view", {"limit": 1}).header.status == 0


def test_api_mytokens_lists_the_tokens_held_in_the_account_asked_for(streamone):
    streamone.users["scoped-user"] = Actor("spsk", [Role(frozenset({"item-read"}), account="acc-news00001"),
                                                     Role(frozenset({"api-mytokens", "livestream-view"}))])

    def tokens(account):
        client = client_for(streamone, "scoped-user", "spsk", auth_type="user", account=account)
        return client.call("api", "mytokens").body

    assert tokens("acc-news00001") == ["api-mytokens", "item-read", "livestream-view"]
    assert tokens("acc-sport0001") == ["api-mytokens", "livestream-view"]


def test_the_default_actors_of_the_emulator_hold_item_read():
    with StreamOneEmulator() as emulator:
        client = StreamOneClient("demo-app", "demo-app-psk", emulator.root_url)
        assert "item-read" in client.call("api", "mytokens").body
        assert client.items_created_in(utc(2025, 6, 1), utc(2025, 6, 8))


def test_both_duration_forms_of_the_emulator_read_to_the_right_seconds(streamone):
    start, end = utc(2026, 7, 1), utc(2026, 8, 1)
    read = {i.id: i.duration for i in client_for(streamone).items_created_in(start, end)}
    raw = {i["id"]: i["duration"] for i in streamone.items() if start <= i["datecreated"] < end}
    assert read == {key: seconds(text) for key, text in raw.items()}
    assert any(re.fullmatch(r"\d:\d\d:\d\d", text) for text in raw.values())  # the vendor's H:MM:SS
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", text) for text in raw.values())


def _ambiguous_in(zone, moment):
    local = moment.astimezone(zone).replace(tzinfo=None)
    return local.replace(tzinfo=zone, fold=0).utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset()


def test_datetimes_in_a_dst_zone_are_converted_to_utc(streamone):
    zone = ZoneInfo("Europe/Amsterdam")
    in_utc = {i.id: i.datecreated for i in client_for(streamone).items()}
    seen = {i.id: i.datecreated for i in client_for(streamone, timezone="Europe/Amsterdam").items()}
    assert "timezone=Europe%2FAmsterdam" in streamone.requests[-1].raw_query
    spring = [k for k, v in in_utc.items() if dt.datetime(2026, 3, 28, tzinfo=UTC) <= v < dt.datetime(2026, 3, 31, tzinfo=UTC)]
    assert spring  # items on both sides of the spring change (2026-03-29 01:00 UTC)
    clear = {k for k, v in in_utc.items() if not _ambiguous_in(zone, v)}
    assert {k: seen[k] for k in clear} == {k: in_utc[k] for k in clear}
    # Naive local times repeat in the autumn hour (2026-10-25 02:00-03:00 local): the API's format cannot tell
    # them apart, so they resolve to the first (summer-time) instant. Asking for UTC, as the assets do, avoids it.
    for key in set(in_utc) - clear:
        assert seen[key] in (in_utc[key], in_utc[key] - dt.timedelta(hours=1))
        assert seen[key].astimezone(zone).utcoffset() == dt.timedelta(hours=2)


def test_the_zone_the_answer_reports_wins_over_the_one_asked_for(streamone):
    row = {"id": "x", "title": "t", "duration": "00:00:01.000", "datecreated": "2026-03-29 03:30:00", "views": 1}
    streamone.fail_next(Reply.json({"header": {"status": 0, "statusmessage": "OK", "count": 1, "timezone": "Europe/Amsterdam"},
                                    "body": [row]}))
    (item,) = client_for(streamone, timezone="UTC").view("item", Item)
    assert item.datecreated == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # CEST, UTC+2, after the change


@pytest.mark.parametrize(
    ("make_client", "call", "status"),
    [
        (lambda e: client_for(e, psk="wrong"), ("item", "view"), 3),
        (lambda e: client_for(e, "ghost"), ("item", "view"), 3),
        (lambda e: client_for(e), ("item", "delete"), 5),
        (lambda e: client_for(e), ("nothing", "view"), 5),
        (lambda e: client_for(e, timezone="Mars/Olympus"), ("item", "view"), 9),
        (lambda e: client_for(e, "no-livestrm1", "npsk", auth_type="user"), ("livestream", "view"), 4),
        (lambda e: client_for(e, "cust-user001", "cpsk", auth_type="user", account="acc-other001"), ("item", "view"), 4),
        (lambda e: client_for(e, "acct-user001", "apsk", auth_type="user", account="acc-news00001,acc-sport0001"), ("item", "view"), 4),
        (lambda e: client_for(e, account="acc-nowhere01"), ("item", "view"), 290),
    ],
)
def test_statuses_raise_typed_errors_and_are_not_retried(streamone, make_client, call, status):
    with pytest.raises(StreamOneError) as caught:
        make_client(streamone).call(*call, {"limit": 1})
    error = caught.value
    assert error.code == status and str(error).startswith(f"StreamOne {call[0]}/{call[1]}: error response [code {status}]: ")
    assert len(streamone.requests) == 1


def test_roles_grant_through_customer_and_account_scopes(streamone):
    assert client_for(streamone, "cust-user001", "cpsk", auth_type="user", account="acc-news00001,acc-sport0001").call(
        "item", "view", {"limit": 1}).header.status == 0
    assert client_for(streamone, "acct-user001", "apsk", auth_type="user", account="acc-news00001").call(
        "item", "view", {"limit": 1}).header.status == 0


@pytest.mark.parametrize("arguments", [
    {"limit": 500}, {"order": "sideways"}, {"orderfield": "colour"}, {"archived": 2}, {"archived": "yes"},
    {"itemtype": "film"}, {"colour": "red"}, {"mindatecreated": "2026-07-01"}, {"maxdatecreated": "2026-07-01T00:00:00"},
    {"mindatecreated": "01-07-2026 00:00:00"}, {"maxdatecreated": "2026-07-01 25:00:00"}])
def test_bad_arguments_are_input_errors(streamone, arguments):
    with pytest.raises(StreamOneError, match="INPUT_ERROR") as caught:
        client_for(streamone).call("item", "view", arguments)
    assert caught.value.code == 6


def test_unknown_parameters_are_refused(streamone):
    now = int(streamone.now())
    query = f"api=3&authentication_type=user&colour=red&format=json&timestamp={now}&user=user"
    reply = requests.post(f"{streamone.root_url}/api/item/view?{query}&signature={sign('psk', '/api/item/view', query, '')}",
                          timeout=10).json()
    assert reply["header"]["status"] == 7


def test_a_stale_timestamp_is_re_signed_once(streamone):
    times = iter([streamone.now() - 3600, streamone.now()])
    client = client_for(streamone, clock=lambda: next(times))
    assert client.call("item", "view", {"limit": 1}).header.status == 0
    assert len(streamone.requests) == 2
    future = client_for(streamone, clock=lambda: streamone.now() + 3600)
    with pytest.raises(StreamOneError, match="TIMESTAMP_OUT_OF_RANGE"):
        future.call("item", "view", {"limit": 1})


def test_repeated_failed_authentication_rate_limits_then_backs_off(streamone):
    for _ in range(5):
        with pytest.raises(StreamOneError):
            client_for(streamone, psk="wrong").call("item", "view")
    slept = []
    with pytest.raises(StreamOneError, match="RATE_LIMITED"):
        client_for(streamone, sleep=slept.append).call("item", "view")
    assert slept == [5.0, 15.0, 45.0]  # backed off three times, then gave up
    streamone.now = lambda: __import__("time").time() + 61  # the lockout passes
    assert client_for(streamone, clock=streamone.now).call("item", "view", {"limit": 1}).header.status == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"header": {"status": "0", "statusmessage": "OK"}, "body": []}, "header.status"),
        ({"header": {"status": 0, "statusmessage": 7}, "body": []}, "header.statusmessage"),
        ({"body": []}, "header"),
        ({"header": {"status": 0, "statusmessage": "OK"}, "body": {"not": "a list"}}, "count|not a list"),
        ({"header": {"status": 0, "statusmessage": "OK", "count": 1},
          "body": [{"id": "x", "title": "t", "duration": "1:00", "datecreated": "yesterday", "views": 1}]}, "datecreated"),
    ],
)
def test_malformed_envelopes_are_payload_errors(streamone, payload, message):
    streamone.fail_next(Reply.json(payload))
    with pytest.raises(ApiPayloadError, match=message):
        list(client_for(streamone).view("item", Item))


def test_configuration_errors_and_no_secret_in_repr():
    with pytest.raises(ApiRequestError, match="user or application"):
        StreamOneClient("a", "b", auth_type="robot")
    with pytest.raises(ApiRequestError, match="not both"):
        StreamOneClient("a", "b", account="x", customer="y")
    assert "b-secret" not in repr(StreamOneClient("a", "b-secret"))


def answer(streamone, *rows):
    """The next item/view answer: these rows (id, title, datecreated and views filled in)."""
    body = [{"id": f"item{n}", "title": "t", "datecreated": "2026-01-01 00:00:00", "views": 1, **row}
            for n, row in enumerate(rows)]
    streamone.fail_next(Reply.json({"header": {"status": 0, "statusmessage": "OK", "count": len(body)}, "body": body}))


@pytest.mark.parametrize(("text", "expected"), [
    ("0:12:59", 779.0), ("00:12:59", 779.0), ("12:00:00", 43200.0), ("123:00:01", 442801.0),
    ("0:12:59.250", 779.25), ("01:02:03.004", 3723.004), ("00:01:30.5", 90.5)])
def test_durations_are_read_as_h_mm_ss_or_hh_mm_ss_with_optional_millis(streamone, text, expected):
    answer(streamone, {"duration": text})
    (item,) = client_for(streamone).view("item", Item)
    assert (item.duration, item.fields_not_understood) == (expected, ())


@pytest.mark.parametrize("text", ["long", "12:59", "0:60:00", "0:1:59", "0:12:59.1234", "-0:12:59", "0:12:59,250", 779])
def test_a_duration_in_an_unexpected_format_becomes_null_and_is_counted(streamone, text):
    answer(streamone, {"duration": text}, {"duration": "0:01:30"})
    items = list(client_for(streamone).view("item", Item))
    assert [(i.duration, i.fields_not_understood) for i in items] == [(None, ("duration",)), (90.0, ())]


def test_archived_is_read_from_a_boolean_or_0_1_and_anything_else_is_counted():
    def read(**row):
        return Item.model_validate({"id": "x", "title": "t", "datecreated": "2026-01-01 00:00:00", "views": 1, **row})

    assert [read(archived=v).archived for v in (True, False, 1, 0)] == [True, False, True, False]
    assert (read().archived, read().fields_not_understood) == (None, ())  # not in the answer: unknown
    for odd in ("1", "true", 2, 1.0, "yes"):
        item = read(archived=odd)
        assert (item.archived, item.fields_not_understood) == (None, ("archived",)), odd
