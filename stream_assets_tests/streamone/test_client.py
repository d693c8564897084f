"""The StreamOne client against the emulator: SDK signature vectors, every status, paging, timezones."""

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
import requests

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiRequestError
from stream_assets.core.errors import IncompleteAnswerError
from stream_assets.streamone.client import EARLY_STOP_MARGIN, StreamOneClient, StreamOneError, encode, sign
from stream_assets.streamone.models import Item
from stream_assets_tests.conftest import STREAMONE_APP, STREAMONE_APP_PSK

UTC = dt.timezone.utc


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


def test_view_pages_until_count_rows_are_read(streamone):
    client = client_for(streamone)
    items = list(client.view("item", Item, {"itemtype": "audio"}, page_size=40))
    expected = [i for i in streamone.items() if i["type"] == "audio"]
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


def test_items_created_in_stops_at_the_first_older_item(streamone):
    client = client_for(streamone)
    start, end = dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 4, tzinfo=UTC)
    found = client.items_created_in(start, end)
    expected = [i for i in streamone.items() if start <= i["datecreated"] < end]
    assert sorted(i.id for i in found) == sorted(i["id"] for i in expected)
    newer = sum(i["datecreated"] >= start for i in streamone.items())
    # pages up to and including the EARLY_STOP_MARGIN-th older item in a row
    assert client.requests_made == -(-(newer + EARLY_STOP_MARGIN) // 100)


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


@pytest.mark.parametrize("arguments", [{"limit": 500}, {"order": "sideways"}, {"orderfield": "colour"},
                                       {"archived": 2}, {"itemtype": "film"}, {"colour": "red"}])
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


def test_a_duration_in_an_unexpected_format_becomes_null_and_is_counted(streamone):
    body = [{"id": "x", "title": "t", "duration": "long", "datecreated": "2026-01-01 00:00:00", "views": 1},
            {"id": "y", "title": "u", "duration": "00:01:30.5", "datecreated": "2026-01-01 00:00:00", "views": 2}]
    streamone.fail_next(Reply.json({"header": {"status": 0, "statusmessage": "OK", "count": 2}, "body": body}))
    items = list(client_for(streamone).view("item", Item))
    assert [(i.id, i.duration, i.fields_not_understood) for i in items] == [("x", None, ("duration",)), ("y", 90.5, ())]
