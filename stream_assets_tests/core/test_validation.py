"""The warehouse's value rules, evaluated by pandas (check_rows: DataFrame writes) and by Arrow compute
(check_page: staged pages), give the same answer for the same rows."""

import pandas as pd
import pyarrow as pa
import pytest

from stream_assets.core.errors import DuplicateKeyError, InvalidValueError
from stream_assets.core.staging import arrow_schema
from stream_assets.core.validation import check_page, check_rows
from stream_assets.core.warehouse import Table, conform

ROWS = Table("test", "rows", (("id", "VARCHAR"), ("ts", "TIMESTAMP"), ("views", "BIGINT"), ("ratio", "DOUBLE"),
                              ("notes", "VARCHAR"), ("record", "JSON")),
             "ts", key=("id", "ts"), non_negative=("views", "ratio"))


def _frame(**columns) -> pd.DataFrame:
    base = {"id": ["a", "b", "c"], "ts": [pd.Timestamp("2026-03-01 01:00", tz="UTC")] * 3, "views": [1, 2, 3],
            "ratio": [0.5, 0.25, 0.0], "notes": ["x", None, "y"], "record": ['{"id": "a"}', '{"id": "b"}', "{}"]}
    return conform(ROWS, pd.DataFrame({**base, **columns}))


def _page(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, schema=arrow_schema(ROWS), preserve_index=False)


def _outcome(check, rows):
    """What a check made of the rows: the rows it kept (sorted), or the error's type, field and message."""
    try:
        kept = check(ROWS, rows, api="TestApi", endpoint="rows")
    except (InvalidValueError, DuplicateKeyError) as error:
        return type(error).__name__, error.field, str(error)
    kept = kept if isinstance(kept, pd.DataFrame) else kept.to_pandas()
    return sorted(map(tuple, kept.astype(str).values.tolist()))


CASES = {
    "clean rows": {},
    "infinity": {"ratio": [float("inf"), 0.1, 0.2]},
    "negative count": {"views": [1, -4, 3]},
    "negative ratio": {"ratio": [0.5, -0.5, 0.0]},
    "timestamp after 2200": {"ts": [pd.Timestamp("2262-01-01", tz="UTC")] * 3},
    "timestamp before 1970": {"ts": [pd.Timestamp("1960-01-01", tz="UTC")] * 3},
    "key text too long": {"id": ["k" * 1001, "b", "c"]},
    "other text too long": {"notes": ["n" * 100_001, None, "y"]},
    "empty key": {"id": ["a", None, "c"]},
    "identical copies": {"id": ["a", "a", "c"], "views": [1, 1, 3], "ratio": [0.5, 0.5, 0.0],
                         "notes": ["x", "x", "y"], "record": ["{}", "{}", "{}"]},
    "copies that differ": {"id": ["a", "a", "c"], "views": [1, 2, 3], "notes": ["x", "x", "y"],
                           "record": ["{}", "{}", "{}"]},
    "negative and too long: the first column's rule speaks": {"views": [-1, 2, 3], "notes": ["n" * 100_001, None, "y"]},
}


@pytest.mark.parametrize("columns", CASES.values(), ids=CASES.keys())
def test_pandas_and_arrow_evaluations_of_the_rules_agree(columns):
    frame = _frame(**columns)
    pandas_outcome = _outcome(check_rows, frame)
    assert _outcome(check_page, _page(frame)) == pandas_outcome
    if columns:
        assert isinstance(pandas_outcome, tuple) or len(pandas_outcome) == 2  # refused, or a copy collapsed


def test_nan_is_refused_in_a_page_where_pandas_can_only_see_a_missing_value():
    page = _page(_frame()).set_column(3, "ratio", pa.array([0.5, float("nan"), None], pa.float64()))
    with pytest.raises(InvalidValueError, match="ratio: nan is not a finite number"):
        check_page(ROWS, page, api="TestApi", endpoint="rows")
