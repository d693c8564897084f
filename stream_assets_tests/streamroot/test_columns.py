"""Streamroot timeseries parsed into Arrow columns: the same rows as the pydantic path, the same refusals."""

import json

import pyarrow as pa
import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiResponseError, DuplicateKeyError, InvalidValueError
from stream_assets.core.staging import Staging, replace_from_staging
from stream_assets.core.warehouse import Warehouse, conform
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.columns import arrow_schema, fetch_timeseries_tables, timeseries_table
from stream_assets.streamroot.endpoints import BY_NAME, ENDPOINTS
from stream_assets_tests.conftest import STREAMROOT_CUSTOMER

DAY = TimeWindow.for_days("2026-03-01")
TRAFFIC = BY_NAME["traffic_timeseries"]
T0 = DAY.start_ms
STEP = 300_000


def _parse(answer, spec=TRAFFIC, window=DAY) -> pa.Table:
    return timeseries_table(answer if isinstance(answer, bytes) else json.dumps(answer).encode(), spec, window)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.is_timeseries], ids=lambda e: e.name)
def test_columns_hold_exactly_the_rows_fetch_frame_produces(streamroot, streamroot_client, endpoint):
    window = TimeWindow.for_days("2026-01-20", "2026-02-24")  # 36 days: two requests, the second partial
    expected = conform(endpoint.table, streamroot_client.fetch_frame(endpoint, window))
    tables = list(fetch_timeseries_tables(streamroot_client, endpoint, window))
    assert len(tables) == 2 and len(streamroot.requests) == 2 + 2
    bodies = [r.json() for r in streamroot.requests]
    assert bodies[2:] == bodies[:2]  # the same requests as fetch_frame
    assert bodies[3] == {"from": str(TimeWindow.for_days("2026-02-20").start_ms), "to": str(window.end_ms), "interval": "5m"}
    got = pa.concat_tables(tables).to_pandas()
    got = got.astype({"ts": expected.ts.dtype, "sr_key": expected.sr_key.dtype})  # pandas 3: Arrow text is `str`
    assert len(got) == 36 * 288
    assert got.equals(expected)


def test_staged_columns_give_the_warehouse_the_same_rows_as_replace(streamroot_client, tmp_path):
    window = TimeWindow.for_days("2026-03-01", "2026-03-02")
    old, new = Warehouse(database=str(tmp_path / "old.duckdb")), Warehouse(database=str(tmp_path / "new.duckdb"))
    old.replace(TRAFFIC.table, streamroot_client.fetch_frame(TRAFFIC, window), window)
    with Staging(TRAFFIC.table, key=("sr_key", "ts"), api="Streamroot", endpoint=TRAFFIC.path, window=window) as staging:
        for table in fetch_timeseries_tables(streamroot_client, TRAFFIC, window):
            staging.append(table)
        with new.get_connection() as conn:
            assert replace_from_staging(conn, TRAFFIC.table, staging, window) == 2 * 288
    query = "SELECT * FROM streamroot.traffic_timeseries ORDER BY ts"
    assert new.query(query).equals(old.query(query))


def test_series_are_outer_joined_on_the_timestamp_and_sorted():
    table = _parse([{"srKey": "k", "cdn": [[T0 + STEP, 2], [T0, 1]], "p2p": [[T0 + 2 * STEP, 7], [T0, 5]]}])
    assert table.schema == arrow_schema(TRAFFIC)
    assert table.column("cdn").to_pylist() == [1.0, 2.0, None]
    assert table.column("p2p").to_pylist() == [5.0, None, 7.0]
    assert [t.value for t in table.column("ts")] == [(T0 + i * STEP) * 1000 for i in range(3)]


def test_both_documented_key_spellings_and_an_empty_answer_are_read():
    assert _parse([{"SrKey": "k", "cdn": [[T0, 1]], "p2p": [[T0, 2]]}]).column("sr_key").to_pylist() == ["k"]
    assert _parse([]).num_rows == 0 and _parse([{"srKey": "k", "cdn": [], "p2p": []}]).num_rows == 0


def test_identical_repeated_points_collapse_and_differing_ones_are_refused():
    twice = [{"srKey": "k", "cdn": [[T0, 1], [T0, 1]], "p2p": [[T0, 2]]}, {"srKey": "k", "cdn": [], "p2p": [[T0, 2]]}]
    assert _parse(twice).to_pylist() == [{"sr_key": "k", "ts": DAY.start.replace(tzinfo=None), "cdn": 1.0, "p2p": 2.0}]
    with pytest.raises(DuplicateKeyError, match="series 'cdn' of key k has two values at timestamp"):
        _parse([{"srKey": "k", "cdn": [[T0, 1], [T0, 3]], "p2p": []}])


@pytest.mark.parametrize(
    "body, message",
    [
        (b'[{"srKey": "k", "cdn": [[1772323200000, "12"]], "p2p": []}]', "cdn.*changed from number to string"),
        (b'[{"srKey": "k", "cdn": [[1772323200000, true]], "p2p": []}]', "cdn.*changed from number to boolean"),
        (b'[{"srKey": 5, "cdn": [], "p2p": []}]', "srKey.*changed from string to number"),
        (b'[{"srKey": "k", "cdn": [[1772323200000, NaN]], "p2p": []}]', "'cdn': NaN or infinite"),
        (b'[{"srKey": "k", "cdn": [[1772323200000, Infinity]], "p2p": []}]', "'cdn': NaN or infinite"),
        (b'[{"srKey": "k", "cdn": [[1772323200000, 1e999]], "p2p": []}]', "too big"),
        (b'[{"srKey": "k", "cdn": [[1772323200000, null]], "p2p": []}]', "'cdn': null timestamp or value"),
        (b'[{"srKey": "k", "cdn": [[1772323200000, 1, 2]], "p2p": []}]', r"'cdn': every point must be a \[timestamp_ms, value\] pair"),
        (b'[{"srKey": "k", "cdn": [[1772323200000.5, 1]], "p2p": []}]', "not whole milliseconds"),
        (b'[{"srKey": "k", "cdn": [[1772409600000, 1]], "p2p": []}]', "timestamp 1772409600000 outside the window"),
        (b'[{"srKey": "k", "cdn": [[-1e300, 1]], "p2p": []}]', "outside the window"),
        (b'[{"srKey": "k", "p2p": []}]', "series 'cdn' is missing"),
        (b'[{"key": "k", "cdn": [], "p2p": []}]', "answer 0 has no srKey"),
        (b'{"srKey": "k", "cdn": [], "p2p": []}', "changed from array to object"),
        (b'[{"srKey": "k", "cdn": [], "p2p": []}', r"invalid JSON \(Expecting .,. delimiter at 37\)"),
        (b'null', "expected a JSON array"),
    ],
)
def test_malformed_answers_are_refused_naming_api_and_endpoint(body, message):
    with pytest.raises(ApiPayloadError, match=message) as caught:
        _parse(body)
    assert (caught.value.api, caught.value.endpoint) == ("Streamroot", "dna/data/traffic/timeseries")
    assert "TrafficSeries" in str(caught.value)


def test_error_answers_and_html_pages_are_reported_like_the_client_does(streamroot, streamroot_client):
    streamroot.fail_next(Reply.json({"message": "invalid since param"}, status=400))
    with pytest.raises(ApiResponseError, match="invalid since param"):
        list(fetch_timeseries_tables(streamroot_client, TRAFFIC, DAY))
    streamroot.fail_next(Reply.text("<html>502</html>", content_type="text/html"))
    with pytest.raises(ApiPayloadError, match="HTML/XML page"):
        list(fetch_timeseries_tables(streamroot_client, TRAFFIC, DAY))
    streamroot.fail_next(Reply.json([{"srKey": streamroot.sr_key(STREAMROOT_CUSTOMER), "cdn": [[DAY.start_ms, -5]], "p2p": []}]))
    with pytest.raises(InvalidValueError, match="Streamroot dna/data/traffic/timeseries: invalid value: field cdn: -5.0 is negative"):  # core/validation.py's rule
        with Staging(TRAFFIC.table, api="Streamroot", endpoint=TRAFFIC.path, window=DAY) as staging:
            for table in fetch_timeseries_tables(streamroot_client, TRAFFIC, DAY):
                staging.append(table)
