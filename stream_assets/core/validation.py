"""What the warehouse may hold (design.md, "Data the warehouse may hold"), checked once for every API.

- :func:`check_rows` runs on every frame before it is written, and :func:`check_page` on every Arrow page
  staged (core/staging.py): the same rules, evaluated by pandas and by Arrow compute (no pandas copy of a
  page), tested to agree (``test_validation.py``): key columns present and not NULL;
  identical duplicates of a key collapse, conflicting ones raise :class:`DuplicateKeyError`; numbers
  finite and within their column's type; declared non-negative columns (counts, bytes, durations,
  views) not negative; timestamps within the range a partition can own; text within its length limit.
  Every refusal is an :class:`InvalidValueError` naming the table and the field.
- :class:`LenientFields` is the rule for non-key fields whose format is an assumption (StreamOne
  ``duration``, StreamAPI ``duration``/``size``): a value that does not parse becomes NULL and is
  counted, and the count goes to the asset's metadata as ``fields_not_understood``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, PrivateAttr, model_validator

from stream_assets.core.errors import DuplicateKeyError, InvalidValueError

# Timestamps a partition can own: well inside what DuckDB TIMESTAMP and pandas (ns, 1677..2262) hold.
EARLIEST = pd.Timestamp("1970-01-01", tz="UTC")
LATEST = pd.Timestamp("2200-01-01", tz="UTC")
MAX_KEY_CHARS = 1_000  # ids, names used as keys
MAX_TEXT_CHARS = 100_000  # any other text (descriptions, URLs)
INTEGER_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1), "SMALLINT": (-(2**15), 2**15 - 1), "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1), "HUGEINT": (-(2**127), 2**127 - 1),
}
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")


def epoch_ms_to_timestamp(value: float | int, field: str = "timestamp") -> pd.Timestamp:
    """Epoch milliseconds as a UTC timestamp; ValueError (naming ``field``) outside 1970..2200 or non-finite."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field}: {value!r} is not a finite epoch-milliseconds value")
    if not EARLIEST.value // 10**6 <= value < LATEST.value // 10**6:
        raise ValueError(f"{field}: {value!r} ms lies outside {EARLIEST.date()}..{LATEST.date()}")
    return pd.Timestamp(int(value), unit="ms", tz="UTC")


def _shown(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)  # -5.0, not np.float64(-5.0)
    return text if len(text) <= 60 else text[:59] + "…"


def check_rows(table: Any, frame: pd.DataFrame, *, api: str | None = None, endpoint: str | None = None) -> pd.DataFrame:
    """``frame`` (already conformed to ``table``) with identical duplicates collapsed, after refusing
    anything the warehouse may not hold. ``table`` is a :class:`~stream_assets.core.warehouse.Table`."""
    api = api or table.schema
    endpoint = endpoint or table.name

    def refuse(field: str, message: str) -> InvalidValueError:
        return InvalidValueError(api, endpoint, field, message)

    if frame.empty:
        return frame
    key = list(table.key or ())
    for name, kind in table.columns:
        values = frame[name]
        kind = kind.upper()
        if kind in FLOAT_TYPES or kind in INTEGER_RANGES or kind.startswith("DECIMAL"):
            numbers = pd.to_numeric(values, errors="coerce")
            not_numbers = values.notna() & numbers.isna()
            if not_numbers.any():
                raise refuse(name, f"{_shown(values[not_numbers].iloc[0])} is not a number")
            floats = numbers.astype("float64")
            infinite = np.isinf(floats)
            if infinite.any():
                raise refuse(name, f"{floats[infinite].iloc[0]} is not a finite number")
            if kind in INTEGER_RANGES:
                low, high = INTEGER_RANGES[kind]
                outside = (floats < low) | (floats > high)
                if outside.any():
                    raise refuse(name, f"{_shown(values[outside].iloc[0])} overflows its {kind} column")
            if name in table.non_negative:
                negative = floats < 0
                if negative.any():
                    raise refuse(name, f"{_shown(values[negative].iloc[0])} is negative (counts, bytes and durations never are)")
        elif kind == "TIMESTAMP":
            stamps = pd.to_datetime(values, utc=True, errors="coerce")
            outside = values.notna() & (stamps.isna() | (stamps < EARLIEST) | (stamps >= LATEST))
            if outside.any():
                raise refuse(name, f"{_shown(values[outside].iloc[0])} lies outside {EARLIEST.date()}..{LATEST.date()}")
        elif kind == "VARCHAR":
            limit = MAX_KEY_CHARS if name in key else MAX_TEXT_CHARS
            lengths = _text_lengths(values)
            too_long = lengths > limit
            if too_long.any():
                raise refuse(name, f"a text of {int(lengths[too_long].iloc[0]):,} characters exceeds the "
                                   f"{limit:,}-character limit")
    if key:
        missing = frame[key].isna().any(axis=1)
        if missing.any():
            first = frame.loc[missing, key].iloc[0]
            raise refuse(next(k for k in key if pd.isna(first[k])), "a key column is empty")
    return drop_identical_duplicates(frame, key, api, endpoint)


def check_page(table: Any, page: pa.Table, *, api: str | None = None, endpoint: str | None = None) -> pa.Table:
    """:func:`check_rows` for an Arrow page already in the table's Arrow types (so integers fit their
    column): the same refusals with the same messages, by Arrow compute, with one difference pandas
    cannot make: NaN in a float column is refused as not finite, where pandas sees a missing value."""
    api = api or table.schema
    endpoint = endpoint or table.name

    def refuse(field: str, message: str) -> InvalidValueError:
        return InvalidValueError(api, endpoint, field, message)

    def first(column: pa.ChunkedArray, mask: pa.ChunkedArray) -> Any:
        return column.filter(mask)[0].as_py()

    if page.num_rows == 0:
        return page
    key = list(table.key or ())
    for name, kind in table.columns:
        column, kind = page.column(name), kind.upper()
        if pa.types.is_floating(column.type):
            not_finite = pc.invert(pc.fill_null(pc.is_finite(column), True))
            if pc.any(not_finite).as_py():
                raise refuse(name, f"{first(column, not_finite)} is not a finite number")
        if name in table.non_negative and (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            negative = pc.fill_null(pc.less(column, 0), False)
            if pc.any(negative).as_py():
                raise refuse(name, f"{_shown(first(column, negative))} is negative (counts, bytes and durations never are)")
        if kind == "TIMESTAMP":
            low, high = (pa.scalar(bound.tz_localize(None).to_pydatetime(), column.type) for bound in (EARLIEST, LATEST))
            outside = pc.fill_null(pc.or_(pc.less(column, low), pc.greater_equal(column, high)), False)
            if pc.any(outside).as_py():
                raise refuse(name, f"{_shown(pd.Timestamp(first(column, outside)))} lies outside {EARLIEST.date()}..{LATEST.date()}")
        elif kind == "VARCHAR":
            limit = MAX_KEY_CHARS if name in key else MAX_TEXT_CHARS
            lengths = pc.utf8_length(column)
            if (pc.max(lengths).as_py() or 0) > limit:
                raise refuse(name, f"a text of {first(lengths, pc.greater(lengths, limit)):,} characters exceeds the "
                                   f"{limit:,}-character limit")
    if key and any(page.column(k).null_count for k in key):
        missing = pc.is_null(page.column(key[0]))
        for k in key[1:]:
            missing = pc.or_(missing, pc.is_null(page.column(k)))
        row = pc.index(missing, True).as_py()
        raise refuse(next(k for k in key if not page.column(k)[row].is_valid), "a key column is empty")
    if keys_unique(page, key or page.column_names):
        return page  # the usual case: no row shares a key
    unique = drop_identical_duplicates(page.to_pandas(), key, api, endpoint)  # the rare case, with pandas' messages
    return pa.Table.from_pandas(unique, schema=page.schema, preserve_index=False)


def keys_unique(page: pa.Table, names: Sequence[str]) -> bool:
    """True when no two rows of the page share these columns' values.

    Pages usually arrive sorted by their key (a timeseries by key and time, a search by id): rows in
    strictly ascending order are unique, which one comparison of each row with the next proves. Otherwise
    Arrow counts the groups. The order test also spares the process Arrow's hash-aggregation engine, whose
    first use costs ~0.1 s, and every materialization runs in a new process.
    """
    if page.num_rows < 2:
        return True
    ascending = None  # row i+1 > row i, lexicographically on ``names``
    for name in reversed(list(names)):
        column = page.column(name)
        before, after = column.slice(0, page.num_rows - 1), column.slice(1)
        greater = pc.greater(after, before)
        ascending = greater if ascending is None else pc.or_kleene(greater, pc.and_kleene(pc.equal(after, before), ascending))
    if pc.all(ascending, skip_nulls=False).as_py():  # a NULL or NaN compares as NULL or False: not proven
        return True
    return page.group_by(list(names)).aggregate([]).num_rows == page.num_rows


def _text_lengths(values: pd.Series) -> pd.Series:
    """Characters per value (0 for NULL or a non-text value), vectorized where pandas can."""
    try:
        return values.str.len().fillna(0)
    except AttributeError:  # no text at all in the column (all NULL, or numbers): the .str accessor refuses it
        return values.map(lambda v: len(v) if isinstance(v, str) else 0)


def drop_identical_duplicates(frame: pd.DataFrame, key: Sequence[str], api: str, endpoint: str) -> pd.DataFrame:
    """One row per identical copy; a key held by two different rows raises DuplicateKeyError."""
    if not frame.duplicated(subset=list(key) or None).any():
        return frame
    unique = frame.drop_duplicates().reset_index(drop=True)
    if key:
        conflicting = unique.duplicated(subset=list(key), keep=False)
        if conflicting.any():
            rows = unique[conflicting]
            first = rows.iloc[0]
            different = [c for c in unique.columns if c not in key
                         and rows[(rows[key] == first[key]).all(axis=1)][c].astype(str).nunique() > 1]
            where = ", ".join(f"{k}={_shown(first[k])}" for k in key)
            raise DuplicateKeyError(api, endpoint, ",".join(key),
                                    f"{int(conflicting.sum())} rows share a key with different values "
                                    f"(first: {where}; differing: {', '.join(different) or '?'})")
    return unique


class NonFiniteValue(ValueError):
    """A number that is understood but may not be stored (NaN, Infinity, overflow): refused, not NULL."""


class LenientFields(BaseModel):
    """A model whose ``lenient`` fields become None, and are counted, when their value does not parse.

    Subclasses map field names to parsers: ``lenient: ClassVar[dict[str, Callable]] = {"duration": float}``.
    A parser raising ValueError/TypeError marks the field as not understood; an empty value is just None.
    A parser raising NonFiniteValue refuses the whole record: non-finite numbers are never stored as NULL.
    """

    lenient: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    _not_understood: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _parse_leniently(cls, data: Any, handler: Any) -> Any:
        bad: list[str] = []
        if isinstance(data, dict) and cls.lenient:
            data = dict(data)
            for name, parse in cls.lenient.items():
                value = data.get(name)
                if value is None or value == "":
                    data[name] = None
                    continue
                try:
                    data[name] = parse(value)
                except NonFiniteValue as exc:
                    raise ValueError(f"{name}: {exc}") from None
                except (ValueError, TypeError, OverflowError):
                    bad.append(name)
                    data[name] = None
        model = handler(data)
        if bad:
            model._not_understood = tuple(bad)
        return model

    @property
    def fields_not_understood(self) -> tuple[str, ...]:
        return self._not_understood


def count_not_understood(models: Iterable[LenientFields]) -> dict[str, int]:
    """``{field: how many records had it in an unexpected format}`` (for ``fields_not_understood``)."""
    counts: Counter[str] = Counter()
    for model in models:
        counts.update(getattr(model, "fields_not_understood", ()))
    return dict(sorted(counts.items()))


def finite_number(value: Any) -> float:
    """A parser for lenient numeric fields: a finite float from a number or numeric text."""
    number = float(value)
    if not math.isfinite(number):
        raise NonFiniteValue(f"{str(value)[:40]!r} is not a finite number")
    return number


def whole_number(value: Any) -> int:
    """A parser for lenient integer fields (``"12"``, ``12``; not ``"12.5"``)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a count")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("not whole")
        return int(value)
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        if not math.isfinite(number):
            raise NonFiniteValue(f"{text[:40]!r} is not a finite number")
        raise ValueError("not a whole number")
    return int(text)
