"""Streamroot timeseries answers as Arrow columns, straight from the JSON bytes.

A timeseries answer is ``[{"srKey": ..., "<series>": [[ts_ms, value], ...], ...}, ...]``: a month of
5-minute points is ~9,000 pairs per series. simdjson parses the bytes and copies each series' numbers
into one NumPy buffer (no Python object per point); every check is then a vectorized one on it:

- types: every point holds two numbers (a string, boolean, null or object where a number belongs is
  refused, never coerced), ``srKey`` is text, every series is present and an array;
- shape: every point is exactly ``[ts_ms, value]``;
- finiteness: NaN, infinities and numbers that overflow a double are refused; the sign (every Streamroot
  figure is non-negative) and the warehouse's other value rules are checked once, by
  :func:`stream_assets.core.validation.check_page`, when :class:`~stream_assets.core.staging.Staging`
  takes the page;
- timestamps: whole milliseconds inside the window asked for (so representable as ``TIMESTAMP``);
- key: one value per ``(sr_key, ts)`` and series (identical repeats collapse, differing ones raise
  DuplicateKeyError).

An answer the fast reader does not take as it is (anything malformed, or valid JSON it cannot hold, such
as an integer beyond 64 bits) is read again by Python's decoder and walked point by point: that walk is
the reference, and says exactly what is wrong and where. The fast reader only ever accepts what the walk
accepts (tested on the same answers).

Measured on the benchmark's 12 answers (207,360 rows, 11 MB): simdjson with the shape check 45 ms,
pyarrow's JSON reader 95 ms (the reader used before), DuckDB ``read_json`` 45 ms but it silently casts
``"2"``, ``true`` and ``5`` (as a key) to the declared type, msgspec, orjson and ``json`` build a Python
object per point (0.25-0.5 s).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import simdjson

from stream_assets.core.errors import ApiPayloadError, DuplicateKeyError, InvalidValueError
from stream_assets.core.http import utf8_text
from stream_assets.core.secrets import scrubbed_excerpt
from stream_assets.core.validation import MAX_KEY_CHARS
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.client import MAX_TIMESERIES_SPAN, StreamrootClient
from stream_assets.streamroot.endpoints import Endpoint

API = "Streamroot"
KEY_SPELLINGS = ("srKey", "SrKey")  # the documentation shows both
# One keyed answer as read: its srKey and, per series, its points as a float array of shape (n, 2).
Keyed = tuple[str, dict[str, np.ndarray]]
_THREAD = threading.local()  # a simdjson parser per thread, reused: it allocates its buffers once, not per answer


def series_names(spec: Endpoint) -> list[str]:
    return [name for name, _ in spec.columns]


def arrow_schema(spec: Endpoint) -> pa.Schema:
    """The warehouse row schema: ``sr_key``, ``ts`` (naive UTC, microseconds), one DOUBLE per series."""
    return pa.schema([("sr_key", pa.string()), ("ts", pa.timestamp("us")),
                      *[(name, pa.float64()) for name in series_names(spec)]])


def timeseries_table(content: bytes, spec: Endpoint, window: TimeWindow, *, status: int | None = None) -> pa.Table:
    """The warehouse rows of one timeseries answer body, as an Arrow table (schema :func:`arrow_schema`).

    Rows are sorted by key then ``ts``; series are outer-joined on the timestamp (a series without a
    point at a timestamp another series has gives NULL there). Raises ApiPayloadError naming the API and
    the endpoint for anything that is not the documented shape or breaks a rule listed in the module doc.
    """
    refuse = _refusal(spec, status)
    names = series_names(spec)
    answers = _read_fast(content, names)
    if answers is None:
        answers = _read_exactly(content, names, refuse)
    longest = max((len(key) for key, _ in answers), default=0)
    if longest > MAX_KEY_CHARS:  # core/validation.py's limit, checked before the key is repeated on every row
        raise InvalidValueError(API, spec.path, "sr_key", f"a text of {longest:,} characters exceeds the "
                                                          f"{MAX_KEY_CHARS:,}-character limit")
    parts = []
    for sr_key in sorted({key for key, _ in answers}):  # one answer per key is the rule; repeats are merged, then checked
        series = {}
        for name in names:
            pairs = np.concatenate([found[name] for key, found in answers if key == sr_key])
            series[name] = _checked(pairs[:, 0], pairs[:, 1], name, sr_key, window, refuse, spec.path)
        parts.append(_joined(sr_key, series, spec))
    return pa.concat_tables(parts) if parts else arrow_schema(spec).empty_table()


def _refusal(spec: Endpoint, status: int | None) -> Callable[[str], ApiPayloadError]:
    def refuse(message: str) -> ApiPayloadError:
        return ApiPayloadError(API, spec.path, f"{spec.model.__name__}: {message}", status=status)
    return refuse


def _read_fast(content: bytes, names: list[str]) -> list[Keyed] | None:
    """The keyed answers as simdjson reads them, or None for anything but the documented shape with
    numbers where numbers belong (then :func:`_read_exactly` says what is wrong)."""
    try:
        document = _parser().parse(content)
        if not isinstance(document, simdjson.Array):
            return None
        answers, arrays = [], 1
        for answer in document:
            if not isinstance(answer, simdjson.Object):
                return None
            key = answer.get(KEY_SPELLINGS[0])
            key = answer.get(KEY_SPELLINGS[1]) if key is None else key
            if not isinstance(key, str):
                return None
            series = {}
            for name in names:
                points = answer.get(name)
                if not isinstance(points, simdjson.Array):
                    return None
                # as_buffer refuses anything but numbers, and flattens nested arrays: hence the lengths, and the
                # count of arrays below.
                flat = np.frombuffer(points.as_buffer(of_type="d"), dtype=np.float64)
                if len(flat) != 2 * len(points) or not set(map(len, points)) <= {2}:
                    return None
                series[name] = flat.reshape(-1, 2)
                arrays += 1 + len(points)
            # What we do not read (srKey, other fields, every name) is walked for its own "[": a field the
            # documentation does not show does not send each answer to the slow walk.
            arrays += sum(name.count("[") + (0 if name in series else _brackets(answer[name])) for name in answer.keys())
            answers.append((key, series))
    except (ValueError, TypeError, RuntimeError):  # not JSON, a number it cannot hold, not a number, not an array
        return None
    # Every "[" in the bytes opens an array or sits in a string (a value or a name): as many as counted (the answer,
    # each series and point, and those of everything else) means no point hides an array ([ts, [v]]).
    return answers if content.count(b"[") == arrays else None


def _brackets(value: Any) -> int:
    """The "[" a decoded (or proxied) JSON value holds: one per array, and those inside text."""
    if isinstance(value, str):
        return value.count("[")
    if isinstance(value, (simdjson.Array, list)):
        return 1 + sum(_brackets(item) for item in value)
    if isinstance(value, (simdjson.Object, dict)):
        return sum(name.count("[") + _brackets(value[name]) for name in value.keys())
    return 0


def _parser() -> simdjson.Parser:
    """This thread's parser (reusing one halves the time to parse a 1 MB answer). A parser cannot parse while
    proxies into its last document live; none outlives :func:`_read_fast`."""
    if getattr(_THREAD, "parser", None) is None:
        _THREAD.parser = simdjson.Parser()
    return _THREAD.parser


def _read_exactly(content: bytes, names: list[str], refuse: Callable[[str], ApiPayloadError]) -> list[Keyed]:
    """The keyed answers read by Python's decoder and walked point by point: the reference reading, and
    the precise refusal (what, and where) of whatever is not the documented shape."""
    try:
        document = json.loads(utf8_text(content))  # NaN and 1e999 decoded, to be refused per series below
    except UnicodeDecodeError:
        raise refuse("the answer is not UTF-8 text") from None
    except json.JSONDecodeError as exc:  # say where, as the other clients do, with an excerpt scrubbed of secrets
        excerpt = scrubbed_excerpt(content, exc.pos - 20, exc.pos + 40)
        raise refuse(f"invalid JSON ({exc.msg} at {exc.pos}): {excerpt!r}") from None
    if not isinstance(document, list):
        raise refuse(f"expected a JSON array of keyed answers, got {_kind(document)}")
    answers = []
    for index, answer in enumerate(document):
        if not isinstance(answer, dict):
            raise refuse(f"answer {index} is {_kind(answer)}, not an object")
        key = next((answer[spelling] for spelling in KEY_SPELLINGS if answer.get(spelling) is not None), None)
        if key is None:
            raise refuse(f"answer {index} has no srKey")
        if not isinstance(key, str):
            raise refuse(f"answer {index}: srKey is {_kind(key)}, not text")
        series = {}
        for name in names:
            points = answer.get(name)
            if points is None:
                raise refuse(f"series '{name}' is missing or null")
            if not isinstance(points, list):
                raise refuse(f"series '{name}' is {_kind(points)}, not an array")
            for number, point in enumerate(points):
                if not isinstance(point, list) or len(point) != 2:
                    raise refuse(f"series '{name}': every point must be a [timestamp_ms, value] pair "
                                 f"(point {number} is {_kind(point)})")
                for item in point:
                    if item is None:
                        raise refuse(f"series '{name}': null timestamp or value (point {number})")
                    if isinstance(item, bool) or not isinstance(item, (int, float)):
                        raise refuse(f"series '{name}': point {number} holds {_kind(item)} where a number belongs")
            try:
                series[name] = np.array(points, dtype=np.float64).reshape(-1, 2)
            except OverflowError:  # an integer beyond a double's range
                raise refuse(f"series '{name}': NaN or infinite number (an integer too big for a double)") from None
        answers.append((key, series))
    return answers


def _kind(value: Any) -> str:
    """What a decoded JSON value is, for messages (a short, scrubbed excerpt of text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"a string ({scrubbed_excerpt(value, 0, 40)!r})"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return "an object"


def _checked(ts: np.ndarray, values: np.ndarray, name: str, sr_key: str, window: TimeWindow,
             refuse, spec_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 ms, sorted and unique, after the finiteness, window and key checks (the sign and
    the other value rules are core/validation.py's, run by Staging on every page)."""
    if not (np.isfinite(ts).all() and np.isfinite(values).all()):
        raise refuse(f"series '{name}': NaN or infinite number")
    outside = (ts < window.start_ms) | (ts >= window.end_ms)
    if outside.any():
        raise refuse(f"series '{name}': timestamp {float(ts[outside][0]):.15g} outside the window asked for ({window})")
    stamps = ts.astype(np.int64)
    if (stamps != ts).any():
        raise refuse(f"series '{name}': timestamp {float(ts[stamps != ts][0])} is not whole milliseconds")
    if len(stamps) > 1 and not (np.diff(stamps) > 0).all():
        order = np.argsort(stamps, kind="stable")
        stamps, values = stamps[order], values[order]
        repeated = np.flatnonzero(stamps[1:] == stamps[:-1]) + 1
        differing = repeated[values[repeated] != values[repeated - 1]]
        if len(differing):
            raise DuplicateKeyError(API, spec_path, "sr_key,ts",
                                    f"rows share a key with different values: series '{name}' of key {sr_key} has "
                                    f"two values at timestamp {stamps[differing[0]]}")
        keep = np.ones(len(stamps), dtype=bool)
        keep[repeated] = False
        stamps, values = stamps[keep], values[keep]
    return stamps, values


def _joined(sr_key: str, series: dict[str, tuple[np.ndarray, np.ndarray]], spec: Endpoint) -> pa.Table:
    stamps = [ts for ts, _ in series.values()]
    union = stamps[0] if all(np.array_equal(stamps[0], ts) for ts in stamps[1:]) else np.unique(np.concatenate(stamps))
    columns: dict[str, Any] = {
        "sr_key": pc.take(pa.array([sr_key], pa.string()), pa.array(np.zeros(len(union), dtype=np.int32))),
        "ts": pa.array(union * 1000, pa.int64()).cast(pa.timestamp("us")),
    }
    for name, (ts, values) in series.items():
        if len(ts) == len(union):
            columns[name] = pa.array(values, pa.float64())
        else:  # outer join: NULL where this series has no point
            full = np.zeros(len(union))
            present = np.zeros(len(union), dtype=bool)
            slots = np.searchsorted(union, ts)
            full[slots], present[slots] = values, True
            columns[name] = pa.array(full, pa.float64(), mask=~present)
    return pa.table(columns, schema=arrow_schema(spec))


def fetch_timeseries_tables(client: StreamrootClient, spec: Endpoint, window: TimeWindow, *,
                            progress: Callable[[str], None] | None = None, **filters: Any) -> Iterator[pa.Table]:
    """What ``client.fetch_frame`` returns for a timeseries endpoint, as one Arrow table per request.

    Same requests (5-minute grain, one per 31 days, the client's parameter checks, transport policy,
    retries and request count), same rows; each table can go to
    :meth:`stream_assets.core.staging.Staging.append` as it arrives.
    """
    chunks = list(window.chunks(MAX_TIMESERIES_SPAN))
    for number, chunk in enumerate(chunks, start=1):
        content = client.answer_bytes(spec, chunk, interval="5m", **filters)
        yield timeseries_table(content, spec, chunk, status=200)
        if progress and len(chunks) > 1:
            progress(f"{spec.path}: {number}/{len(chunks)} requests ({chunk}) fetched")
