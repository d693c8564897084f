"""The StreamAPI client against the emulator: signing, rids across threads and processes, every status code,
hostile XML."""

import threading

import pytest
import requests

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiRequestError
from stream_assets.core.state import RequestIds
from stream_assets.core.windows import TimeWindow
from stream_assets.streamapi.client import StreamApiClient, StreamApiError, sign
from stream_assets_tests.conftest import STREAMAPI_KEY, STREAMAPI_SECRET, run_processes


@pytest.fixture
def client(streamapi) -> StreamApiClient:
    return StreamApiClient(STREAMAPI_KEY, STREAMAPI_SECRET, streamapi.base_url)


def xml(body: str) -> Reply:
    return Reply.text(body, content_type="text/xml")


# The worked examples of reference/apis.md (key APIKEY123, secret SECRET456, rid 1700000000000).
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"key": "APIKEY123"}, "59194f48b33bf199dff349fec105d317"),
        ({"key": "APIKEY123", "site_user_id": "42", "username": "alice"}, "a0c01f726bb9089d43fdacfbf707b860"),
        ({"key": "APIKEY123", "public_hostid": "1000016132"}, "98563337bce49dbec18f9512b7ccee65"),
        ({"key": "APIKEY123", "start_date": "1584403200000", "end_date": "1584489600000"}, "7d5725d4bbfb8bf20cea6de3170e6373"),
    ],
)
def test_signature_matches_the_worked_examples(params, expected):
    assert sign({**params, "rid": "1", "sig": "x"}, "SECRET456", 1700000000000) == expected


def test_every_request_carries_key_rid_and_a_valid_sig(streamapi, client):
    client.themes()
    client.video_recordings(public_hostid="1000016000", start_date=0, end_date=1)
    for request in streamapi.requests:
        params = {k: v[-1] for k, v in request.query.items()}
        assert params["key"] == STREAMAPI_KEY
        assert params["sig"] == sign(params, STREAMAPI_SECRET, params["rid"])
        assert STREAMAPI_SECRET not in request.raw_query


def test_create_session_is_posted_and_then_seen_by_the_other_calls(streamapi, client):
    created = client.create_session(site_user_id=42, username="alice", fme_key="f1b8221d2b69", is_video_private=True)
    assert streamapi.requests[-1].method == "POST" and "username=alice" in streamapi.requests[-1].body.decode()
    assert created.public_hostid == "42" and created.private_hostid
    assert "private_hostid" not in created.model_dump() and created.private_hostid not in repr(created)
    info = client.live_session(42)
    assert info.is_live and info.username == "alice"
    assert client.private_host_id(42).private_hostid == created.private_hostid
    assert client.public_host_id(created.private_hostid).public_hostid == "42"


def test_live_list_shows_a_new_session_only_after_the_documented_delay(streamapi, client):
    before = {s.public_hostid for s in client.live_sessions()}
    assert before == {"1000016000", "1000016002"}
    client.create_session(site_user_id=77)
    assert {s.public_hostid for s in client.live_sessions()} == before
    streamapi.list_delay_seconds = 0
    assert {s.public_hostid for s in client.live_sessions()} == before | {"77"}


def test_recordings_window_is_sent_in_epoch_ms_and_matches_the_emulator(streamapi, client):
    window = TimeWindow.for_days("2026-03-01", "2026-03-07")
    recordings = client.recordings_in(window)
    params = {k: v[-1] for k, v in streamapi.requests[-1].query.items()}
    assert (params["start_date"], params["end_date"]) == (str(window.start_ms), str(window.end_ms - 1))
    expected = streamapi.recordings(STREAMAPI_KEY, window.start_ms, window.end_ms - 1)
    assert [r.id for r in recordings] == [v["id"] for v in expected] and recordings
    assert all(window.start <= r.creation_date < window.end for r in recordings)
    assert recordings[0].size == int(expected[0]["size"]) and recordings[0].duration == float(expected[0]["duration"])
    by_host = client.video_recordings(public_hostid=recordings[0].public_hostid, start_date=window.start_ms,
                                      end_date=window.end_ms - 1)
    assert {r.public_hostid for r in by_host} == {recordings[0].public_hostid}


def test_themes(client):
    themes = client.themes()
    assert [t.name for t in themes] == ["Classic", "Widescreen", "Studio HD", "Compact"] and themes[2].width == 1280


def raw_call(streamapi, path, params, *, key=STREAMAPI_KEY, secret=STREAMAPI_SECRET, rid=None, method="GET"):
    rid = rid or RequestIds(key).state.advance("raw", 1)
    signed = {**params, "key": key, "rid": str(rid)}
    signed["sig"] = sign(signed, secret, rid)
    return requests.request(method, f"{streamapi.base_url}/{path}", params=signed, timeout=10).text


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.live_session("999"), 8),
        (lambda c: c.private_host_id("999"), 8),
        (lambda c: c.public_host_id("NOSUCHHOST"), 46),
        (lambda c: c.private_host_id("1000016100"), 201),  # a host of "other-key"
        (lambda c: c.create_session(site_user_id="1000016100"), 201),
        (lambda c: c.create_session(username="not valid!"), 100),
    ],
)
def test_status_codes_raise_typed_errors_with_their_meaning(streamapi, client, call, code):
    with pytest.raises(StreamApiError) as caught:
        call(client)
    error = caught.value
    assert error.code == code and error.api == "StreamAPI"
    assert str(error).startswith(f"StreamAPI {error.endpoint}: error response [code {code}]: {error.meaning}")
    assert len(streamapi.requests) == 1  # not retried


def test_missing_required_parameter_is_refused_by_client_and_by_emulator(streamapi, client):
    with pytest.raises(ApiRequestError, match="public_hostid"):
        client.call("live_session", {})
    assert streamapi.requests == []
    assert "<code>1</code>" in raw_call(streamapi, "session/live", {})
    reply = requests.get(f"{streamapi.base_url}/theme/list", params={"key": STREAMAPI_KEY}, timeout=10).text
    assert "<code>1</code>" in reply


def test_unknown_key_and_wrong_secret(streamapi):
    with pytest.raises(StreamApiError) as caught:
        StreamApiClient("who-is-this", "s", streamapi.base_url).themes()
    assert caught.value.code == 200 and "Invalid API key" in str(caught.value)
    with pytest.raises(StreamApiError) as caught:
        StreamApiClient(STREAMAPI_KEY, "not-the-secret", streamapi.base_url).themes()
    assert caught.value.code == 202
    sent_sig = streamapi.requests[-1].query["sig"][0]
    assert str(caught.value) == "StreamAPI theme/list: error response [code 202]: Invalid sig (signature) value"
    assert "not-the-secret" not in repr(caught.value) and sent_sig not in repr(caught.value)


def test_a_refused_rid_is_retried_once_with_a_fresh_rid(state_backend, streamapi, client):
    streamapi.fail_next(xml("<response><code>203</code><msg>Invalid request ID value</msg></response>"))
    assert client.themes()
    first, second = (int(r.query["rid"][0]) for r in streamapi.requests)
    assert second > first


def test_a_rid_refused_twice_is_reported(state_backend, streamapi, client):
    streamapi.accounts[STREAMAPI_KEY].last_rid = 10**15  # someone used a far larger rid for this key
    with pytest.raises(StreamApiError) as caught:
        client.themes()
    assert caught.value.code == 203 and len(streamapi.requests) == 2


def test_wrong_method_is_an_unknown_error(streamapi):
    assert "<code>100</code>" in raw_call(streamapi, "session/create", {"username": "bob"}, method="GET")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
         '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><response><code>0</code><msg>&c;</msg></response>', "unsafe XML"),
        ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
         "<response><code>0</code><msg>&xxe;</msg></response>", "unsafe XML"),
        ("<html><body>502 Bad Gateway</body>", "not well-formed XML"),
        ("<response><msg>no code</msg></response>", "no numeric <code>"),
        ('<response><code>0</code><themes><theme id="1"><width>wide</width></theme></themes></response>', "Theme field"),
    ],
    ids=["billion-laughs", "xxe", "html", "no-code", "bad-type"],
)
def test_hostile_or_malformed_xml_is_refused(streamapi, client, body, message):
    streamapi.fail_next(xml(body))
    with pytest.raises(ApiPayloadError, match=message):
        client.themes()


def test_rids_strictly_increase_across_threads(state_backend, streamapi, client):
    errors = []

    def work():
        try:
            for _ in range(15):
                client.themes()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rids = [int(r.query["rid"][0]) for r in streamapi.requests]
    assert len(rids) == 90 and all(b > a for a, b in zip(rids, rids[1:]))


def _calls_from_another_process(base_url: str, data_dir: str, calls: int) -> None:
    import os

    os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    client = StreamApiClient(STREAMAPI_KEY, STREAMAPI_SECRET, base_url)
    for _ in range(calls):
        client.themes()


def test_rids_strictly_increase_across_processes(state_backend, streamapi, private_data_dir):
    args = (streamapi.base_url, str(private_data_dir), 20)
    assert run_processes(_calls_from_another_process, [args] * 4) == [0] * 4
    rids = [int(r.query["rid"][0]) for r in streamapi.requests]
    assert len(rids) == 80  # no 203 retries were needed
    assert all(b > a for a, b in zip(rids, rids[1:]))
    assert RequestIds(STREAMAPI_KEY).last() == rids[-1]
