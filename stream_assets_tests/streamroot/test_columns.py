"""Streamroot timeseries parsed into Arrow columns: the same rows as the pydantic path, the same refusals."""

import json

import numpy as np
import pyarrow as pa
import pytest

from stream_assets.core.emulator import Reply
from stream_assets.core.errors import ApiPayloadError, ApiResponseError, DuplicateKeyError, InvalidValueError
from stream_assets.core.staging import Staging, replace_from_staging
from stream_assets.core.warehouse import Warehouse, conform
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.columns import (
    _read_exactly, _read_fast, arrow_schema, fetch_timeseries_tables, series_names, timeseries_table)
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


def _cdn(points: bytes) -> bytes:
    """A traffic answer of key k whose cdn series holds ``points`` (raw JSON)."""
    return b'[{"srKey": "k", "cdn": [' + points + b'], "p2p": []}]'


MALFORMED = [
    (_cdn(b'[1772323200000, "12"]'), r"'cdn': point 0 holds a string \('12'\) where a number belongs"),
    (_cdn(b'[1772323200000, true]'), r"'cdn': point 0 holds a boolean \(true\) where"),
    (_cdn(b'[1772323200000, {}]'), "'cdn': point 0 holds an object where"),
    (b'[{"srKey": 5, "cdn": [], "p2p": []}]', "answer 0: srKey is a number, not text"),
    (_cdn(b'[1772323200000, NaN]'), "'cdn': NaN or infinite"),
    (_cdn(b'[1772323200000, Infinity]'), "'cdn': NaN or infinite"),
    (_cdn(b'[1772323200000, 1e999]'), "'cdn': NaN or infinite"),
    (_cdn(b'[1772323200000, 1' + b"0" * 400 + b']'), "'cdn': NaN or infinite"),
    (_cdn(b'[1772323200000, null]'), r"'cdn': null timestamp or value \(point 0\)"),
    (_cdn(b'[1772323200000, 1, 2]'), r"'cdn': every point must be a \[timestamp_ms, value\] pair"),
    # Numbers that flatten to whole pairs, nested wrongly: the lengths, not the count, are checked.
    (_cdn(b'[1772323200000, 1, 1772323500000], [2]'), r"pair \(point 0 is an array of 3\)"),
    (_cdn(b'[1772323200000, [1]], [1772323500000, 2]'), "point 0 holds an array of 1 where"),
    (_cdn(b'[1772323200000, 1], 5, 6'), r"pair \(point 1 is a number\)"),
    (_cdn(b'[]'), r"pair \(point 0 is an array of 0\)"),
    (_cdn(b'[1772323200000.5, 1]'), "not whole milliseconds"),
    (_cdn(b'[1772409600000, 1]'), "timestamp 1772409600000 outside the window"),
    (_cdn(b'[-1e300, 1]'), "outside the window"),
    (b'[{"srKey": "k", "p2p": []}]', "series 'cdn' is missing"),
    (b'[{"srKey": "k", "cdn": {}, "p2p": []}]', "series 'cdn' is an object, not an array"),
    (b'[{"key": "k", "cdn": [], "p2p": []}]', "answer 0 has no srKey"),
    (b'[{"srKey": null, "cdn": [], "p2p": []}]', "answer 0 has no srKey"),
    (b'[[]]', "answer 0 is an array of 0, not an object"),
    (b'{"srKey": "k", "cdn": [], "p2p": []}', "expected a JSON array of keyed answers, got an object"),
    (b'[{"srKey": "k", "cdn": [], "p2p": []}', r"invalid JSON \(Expecting .,. delimiter at 37\)"),
    (b'[{"srKey": "k\xff", "cdn": [], "p2p": []}]', "not UTF-8 text"),
    (b'null', "expected a JSON array of keyed answers, got null"),
]


@pytest.mark.parametrize("body, message", MALFORMED)
def test_malformed_answers_are_refused_naming_api_and_endpoint(body, message):
    with pytest.raises(ApiPayloadError, match=message) as caught:
        _parse(body)
    assert (caught.value.api, caught.value.endpoint) == ("Streamroot", "dna/data/traffic/timeseries")
    assert "TrafficSeries" in str(caught.value)


@pytest.mark.parametrize("body", [body for body, _ in MALFORMED])
def test_the_fast_reader_never_accepts_what_the_exact_walk_refuses(body):
    names = series_names(TRAFFIC)
    fast = _read_fast(body, names)
    try:
        exact = _read_exactly(body, names, lambda message: ValueError(message))
    except ValueError:
        assert fast is None
    else:  # the walk takes it (the value rules come later): both read the same numbers
        assert fast is None or _same(fast, exact)


def _same(left, right) -> bool:
    return [key for key, _ in left] == [key for key, _ in right] and all(
        np.array_equal(a[name], b[name], equal_nan=True) for (_, a), (_, b) in zip(left, right) for name in a)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.is_timeseries], ids=lambda e: e.name)
def test_the_fast_reader_takes_emulator_answers_and_reads_what_the_walk_reads(streamroot, streamroot_client, endpoint):
    content = streamroot_client.answer_bytes(endpoint, DAY, interval="5m")
    names = series_names(endpoint)
    fast = _read_fast(content, names)
    assert fast is not None and sum(len(points) for _, found in fast for points in found.values()) > 0
    assert _same(fast, _read_exactly(content, names, ApiPayloadError))


def test_valid_json_the_fast_reader_cannot_hold_is_read_by_the_walk():
    big = 18446744073709551616  # 2**64: simdjson refuses integers beyond 64 bits
    body = b'[{"srKey": "k", "cdn": [[%d, %d]], "p2p": []}]' % (T0, big)
    assert _read_fast(body, series_names(TRAFFIC)) is None
    assert _parse(body).column("cdn").to_pylist() == [float(big)]
    assert _parse(b"\xef\xbb\xbf" + json.dumps([{"srKey": "k", "cdn": [[T0, 1]], "p2p": []}]).encode()).num_rows == 1



def test_fields_the_documentation_does_not_show_and_brackets_in_text_keep_the_fast_reader():
    body = json.dumps([{"srKey": "k[1]", "cdn": [[T0, 1]], "p2p": [], "regions": [["eu[west]", 1], {"x[": [[]]}],
                        "unit[s]": "bytes ["}]).encode()
    fast = _read_fast(body, series_names(TRAFFIC))
    assert fast is not None and _same(fast, _read_exactly(body, series_names(TRAFFIC), ApiPayloadError))
    assert _parse(body).to_pylist() == [{"sr_key": "k[1]", "ts": DAY.start.replace(tzinfo=None), "cdn": 1.0, "p2p": None}]
    # ... while a point that hides an array is still refused, whatever else the answer holds.
    hidden = json.dumps([{"srKey": "k", "cdn": [[T0, [1]], [T0 + STEP, 2]], "p2p": [], "notes": "]]"}]).encode()
    assert _read_fast(hidden, series_names(TRAFFIC)) is None
    with pytest.raises(ApiPayloadError, match="point 0 holds an array of 1"):
        _parse(hidden)


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
