"""The Streamroot client against the emulator: every endpoint, every parameter form, every documented error."""

import datetime as dt

import pytest
import requests

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiConnectionError, ApiPayloadError, ApiRequestError, ApiResponseError
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.client import StreamrootClient
from stream_assets.streamroot.emulator import STREAMS
from stream_assets.streamroot.endpoints import ENDPOINTS
from stream_assets_tests.conftest import STREAMROOT_CUSTOMER, STREAMROOT_KEY

DAY = TimeWindow.for_days("2026-03-01")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_every_endpoint_answers_with_the_customers_key(streamroot, streamroot_client, endpoint):
    answers = streamroot_client.fetch(endpoint, DAY)
    assert [a.sr_key for a in answers] == [streamroot.sr_key(STREAMROOT_CUSTOMER)]
    assert isinstance(answers[0], endpoint.model)
    (request,) = streamroot.requests
    assert request.method == "POST"
    assert request.path == f"/v3/customers/{STREAMROOT_CUSTOMER}/{endpoint.path}"
    assert request.header("Authorization") == f"API-Key {STREAMROOT_KEY}"
    assert request.json() == {"from": str(DAY.start_ms), "to": str(DAY.end_ms)}


def test_timeseries_points_are_interval_starts_floored_to_the_interval(streamroot_client):
    # The documented example: from 10:35 with a 10m interval starts at 10:30.
    (series,) = streamroot_client.query("audience_timeseries", from_="1584441300000", to="1584527700000", interval="10m")
    stamps = [int(ts) for ts, _ in series.audience]
    assert stamps[0] == 1584441000000
    assert {b - a for a, b in zip(stamps, stamps[1:])} == {600_000}


def test_timeseries_aggregate_the_five_minute_data(streamroot, streamroot_client):
    data = streamroot.five_minute_data(STREAMROOT_CUSTOMER, DAY.start_ms, DAY.end_ms)
    (traffic,) = streamroot_client.fetch("traffic_timeseries", DAY, interval="1h")
    assert len(traffic.cdn) == 24
    assert sum(v for _, v in traffic.cdn) == pytest.approx(data.cdn.sum())
    (audience,) = streamroot_client.fetch("audience_timeseries", DAY, interval="1d")
    assert audience.audience == [[DAY.start_ms, data.audience.max()]]
    (bandwidth,) = streamroot_client.fetch("bandwidth_timeseries", DAY, interval="1h")
    first_hour = data.iloc[:12]
    assert bandwidth.p2p[0][1] == pytest.approx((first_hour.p2p * 8 / 300).mean())


def test_aggregates_are_computed_from_the_same_five_minute_data(streamroot, streamroot_client):
    data = streamroot.five_minute_data(STREAMROOT_CUSTOMER, DAY.start_ms, DAY.end_ms)
    (audience,) = streamroot_client.fetch("audience", DAY)
    assert (audience.max, audience.average) == (data.audience.max(), pytest.approx(data.audience.mean(), abs=1e-3))
    ordered = sorted(data.audience)
    assert audience.audience_95th == ordered[int(len(ordered) * 0.95 + 0.999) - 1]
    (buffering,) = streamroot_client.fetch("buffering", DAY)
    assert (buffering.played, buffering.buffered) == (data.played.sum(), data.buffered.sum())
    (bandwidth,) = streamroot_client.fetch("bandwidth", DAY)
    total_bps = (data.cdn + data.p2p) * 8 / 300
    assert bandwidth.max == pytest.approx(total_bps.max())
    assert bandwidth.p2p_max <= bandwidth.max and bandwidth.cdn_max <= bandwidth.max
    assert bandwidth.p2p_average == pytest.approx((data.p2p * 8 / 300).mean())


def test_date_form_equals_the_millisecond_form(streamroot_client):
    by_date = streamroot_client.query("traffic", from_="2026-03-01", to="2026-03-02")
    by_ms = streamroot_client.query("traffic", from_=DAY.start_ms, to=DAY.end_ms)
    assert by_date == by_ms


def test_since_counts_back_from_now(streamroot, streamroot_client):
    (series,) = streamroot_client.query("audience_timeseries", since="1h", interval="5m")
    assert 11 <= len(series.audience) <= 12
    assert series.audience[-1][0] <= streamroot.now() * 1000 - 300_000
    assert streamroot.requests[-1].json() == {"since": "1h", "interval": "5m"}


def test_content_type_content_and_platform_filters_split_the_data(streamroot_client):
    def cdn(**filters):
        return streamroot_client.fetch("traffic", DAY, **filters)[0].cdn

    assert cdn(content_type="live") + cdn(content_type="vod") == pytest.approx(cdn(content_type="all"))
    assert cdn(content="live/sportsLive.m3u8") < cdn(content_type="live")
    assert cdn(content_type="vod", content="live/sportsLive.m3u8") == 0
    assert cdn(platform="web-desktop") == pytest.approx(cdn() * 0.4, rel=0.01)
    (streams,) = streamroot_client.fetch("streams", DAY, content_type="vod")
    assert streams.streams and all(STREAMS[s][0] == "vod" for s in streams.streams)
    (platforms,) = streamroot_client.fetch("platforms", DAY, platform="web-desktop")
    assert platforms.platforms == ["web-desktop"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "1h", "from_": "2026-03-01", "to": "2026-03-02"}, "cannot be combined"),
        ({"from_": "2026-03-01"}, "must be given together"),
        ({"to": "2026-03-01"}, "must be given together"),
        ({}, "either 'since' or both"),
        ({"since": "1 h"}, "invalid since"),
        ({"since": "3y"}, "invalid since"),
        ({"from_": "yesterday", "to": "2026-03-02"}, "YYYY-MM-DD or a Unix timestamp"),
        ({"from_": "2026-03-02", "to": "2026-03-01"}, "must be before"),
        ({"since": "1d", "content_type": "movies"}, "invalid contentType"),
    ],
)
def test_parameter_rules_are_checked_before_sending(streamroot, streamroot_client, kwargs, message):
    with pytest.raises(ApiRequestError, match=message) as caught:
        streamroot_client.query("traffic", **kwargs)
    assert caught.value.api == "Streamroot" and caught.value.endpoint == "dna/data/traffic"
    assert streamroot.requests == []


@pytest.mark.parametrize("interval", ["7m", "5w", "0m", "10", "1y"])
def test_interval_must_be_a_multiple_of_five_minutes_up_to_four_weeks(streamroot_client, interval):
    with pytest.raises(ApiRequestError, match="invalid interval"):
        streamroot_client.query("traffic_timeseries", since="1d", interval=interval)


def test_interval_is_refused_on_aggregate_endpoints(streamroot_client):
    with pytest.raises(ApiRequestError, match="timeseries endpoints only"):
        streamroot_client.query("traffic", since="1d", interval="10m")
    assert streamroot_client.query("traffic_timeseries", since="1d", interval="4w")


# The emulator enforces the same rules on its own (other clients exist): raw requests, documented bodies.
@pytest.mark.parametrize(
    ("body", "status", "payload"),
    [
        ({"since": "16 hours"}, 400, {"message": "invalid since param"}),
        ({"since": "1d", "contentType": "movies"}, 400, {"error": "invalid content type"}),
        ({"since": "1d", "from": "2026-03-01", "to": "2026-03-02"}, 400, {"message": "since cannot be passed in addition to from/to"}),
        ({"from": "2026-03-01"}, 400, {"message": "param 'to' is required if param 'from' is present"}),
        ({"to": "2026-03-01"}, 400, {"message": "param 'from' is required if param 'to' is present"}),
        ({"from": "March", "to": "2026-03-02"}, 400, {"message": "invalid from param"}),
        ({"from": "2026-03-02", "to": "2026-03-01"}, 400, {"message": "invalid time range: from must be before to"}),
        ({"since": "1d", "interval": "7m"}, 400, {"message": "invalid interval param"}),
        ({"since": "1d", "interval": "5w"}, 400, {"message": "invalid interval param"}),
        ({}, 400, {"message": "one of since or from/to is required"}),
    ],
)
def test_emulator_answers_documented_error_bodies(streamroot, body, status, payload):
    response = requests.post(
        f"{streamroot.base_url}/v3/customers/{STREAMROOT_CUSTOMER}/dna/data/traffic/timeseries",
        json=body, headers={"Authorization": f"API-Key {STREAMROOT_KEY}"}, timeout=10,
    )
    assert (response.status_code, response.json()) == (status, payload)


def test_wrong_key_is_401_with_the_apis_message(streamroot):
    client = StreamrootClient("wrong-key", STREAMROOT_CUSTOMER, streamroot.base_url)
    with pytest.raises(ApiResponseError) as caught:
        client.fetch("audience", DAY)
    assert caught.value.status == 401 and "invalid API key" in str(caught.value)
    assert "wrong-key" not in str(caught.value) and "wrong-key" not in repr(client)


def test_another_customers_key_is_refused_and_unknown_customer_is_404(streamroot):
    with pytest.raises(ApiResponseError, match="HTTP 401"):
        StreamrootClient("other-key", STREAMROOT_CUSTOMER, streamroot.base_url).fetch("audience", DAY)
    with pytest.raises(ApiResponseError, match="customer not found") as caught:
        StreamrootClient(STREAMROOT_KEY, "nobody", streamroot.base_url).fetch("audience", DAY)
    assert caught.value.status == 404


def test_emulator_refuses_get_and_unknown_paths(streamroot):
    auth = {"Authorization": f"API-Key {STREAMROOT_KEY}"}
    base = f"{streamroot.base_url}/v3/customers/{STREAMROOT_CUSTOMER}/dna/data"
    assert requests.get(f"{base}/traffic", headers=auth, timeout=10).status_code == 405
    assert requests.post(f"{base}/viewers", json={"since": "1d"}, headers=auth, timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply.text("<html><body>502 Bad Gateway</body></html>", content_type="text/html"), "HTML/XML page"),
        (Reply.text('[{"srKey": "k", "cdn": 1', content_type="application/json"), "invalid JSON"),
        (Reply.json([{"srKey": "k", "cdn": "12", "p2p": 3}]), "cdn"),
        (Reply.json([{"srKey": "k", "p2p": 3}]), "cdn"),
        (Reply.json({"srKey": "k", "cdn": 1, "p2p": 3}), "top level|list"),
    ],
)
def test_malformed_answers_raise_payload_errors(streamroot, streamroot_client, reply, message):
    streamroot.fail_next(reply)
    with pytest.raises(ApiPayloadError, match=message) as caught:
        streamroot_client.fetch("traffic", DAY)
    assert caught.value.endpoint == "dna/data/traffic"


def test_malformed_timeseries_points_are_refused(streamroot, streamroot_client):
    streamroot.fail_next(Reply.json([{"srKey": "k", "audience": [[1584441000000, 3, 4]]}]))
    with pytest.raises(ApiPayloadError, match="audience"):
        streamroot_client.fetch("audience_timeseries", DAY)


def test_documented_spellings_are_accepted(streamroot, streamroot_client):
    streamroot.fail_next(Reply.json([{"SrKey": "k", "p2p": [[1, 2]], "cdn": [[1, 3]]}]))
    assert streamroot_client.fetch("traffic_timeseries", DAY)[0].sr_key == "k"
    streamroot.fail_next(Reply.json([{"srKey": "k", "p2pAverage": 1, "cdnMax": 2, "p2pMax": 3, "max": 4, "p2p95th": 4}]))
    assert streamroot_client.fetch("bandwidth", DAY)[0].p2p_average == 1

    raw = requests.post(f"{streamroot.base_url}/v3/customers/{STREAMROOT_CUSTOMER}/dna/data/bandwidth",
                        json={"since": "1d"}, headers={"Authorization": f"API-Key {STREAMROOT_KEY}"}, timeout=10)
    assert "p2pAvegage" in raw.json()[0]  # the emulator spells it as the documentation does


def test_server_errors_are_retried_then_reported(streamroot, streamroot_client):
    streamroot.fail_next(Reply.json({"message": "upstream hiccup"}, status=503), times=2)
    assert streamroot_client.fetch("traffic", DAY)
    assert len(streamroot.requests) == 3 and streamroot_client.requests_made == 3
    streamroot.clear()
    streamroot.fail_next(Reply.json({"message": "down for maintenance"}, status=500), times=10)
    with pytest.raises(ApiResponseError, match="down for maintenance") as caught:
        streamroot_client.fetch("traffic", DAY)
    assert caught.value.transient and len(streamroot.requests) == 4  # 1 + 3 retries


def test_unreachable_api_is_a_transient_connection_error():
    client = StreamrootClient(STREAMROOT_KEY, STREAMROOT_CUSTOMER, "http://127.0.0.1:9")
    with pytest.raises(ApiConnectionError) as caught:
        client.fetch("traffic", DAY)
    assert caught.value.transient


def test_fetch_frame_returns_table_rows(streamroot, streamroot_client):
    window = TimeWindow.for_days("2026-03-01", "2026-03-03")
    series = streamroot_client.fetch_frame("buffering_timeseries", window)
    assert list(series.columns) == ["sr_key", "ts", "played", "buffered"]
    assert len(series) == 3 * 288 and series.ts.min() == window.start
    assert len(streamroot.requests) == 1
    daily = streamroot_client.fetch_frame("platforms", window)
    assert list(daily.columns) == ["sr_key", "day", "platform"]
    assert set(daily.day) == {dt.date(2026, 3, d) for d in (1, 2, 3)}
    assert len(streamroot.requests) == 1 + 3


def test_long_timeseries_ranges_are_fetched_in_31_day_requests(streamroot, streamroot_client):
    window = TimeWindow.for_days("2026-01-01", "2026-03-04")  # 63 days
    heard = []
    frame = streamroot_client.fetch_frame("audience_timeseries", window, progress=heard.append)
    assert [r.json()["from"] for r in streamroot.requests] == [
        str(TimeWindow.for_days(day).start_ms) for day in ("2026-01-01", "2026-02-01", "2026-03-04")]
    assert len(frame) == 63 * 288 and frame.ts.is_unique and frame.ts.is_monotonic_increasing
    assert len(heard) == 3


@pytest.mark.parametrize(
    "payload", [{"message": "invalid since param"}, {"error": "invalid content type"}], ids=["message", "error"]
)
def test_documented_error_bodies_reach_the_caller_through_the_client(streamroot, streamroot_client, payload):
    streamroot.fail_next(Reply.json(payload, status=400))
    with pytest.raises(ApiResponseError) as caught:
        streamroot_client.fetch("traffic", DAY)
    assert caught.value.status == 400 and not caught.value.transient
    assert str(caught.value) == f"Streamroot dna/data/traffic: error response [HTTP 400]: {next(iter(payload.values()))}"
