"""The query language: the client's builder writes what the vendor's examples show, the emulator's grammar reads it."""

import datetime as dt

import pytest

from stream_assets.streamtime.query import (
    And, Comparison, Or, QuerySyntaxError, all_of, compare, comparisons, date_window, parse, quote,
)


def test_a_date_window_is_two_inclusive_comparisons_on_quoted_days():
    text = date_window("logged_time_date", dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert text == 'logged_time_date >= "2026-01-01" and logged_time_date <= "2026-01-31"'
    assert parse(text) == And((Comparison("logged_time_date", ">=", "2026-01-01"),
                               Comparison("logged_time_date", "<=", "2026-01-31")))


@pytest.mark.parametrize(("value", "written"), [
    ("In Play", '"In Play"'), (True, '"true"'), (False, '"false"'), (42, '"42"'), (dt.date(2025, 1, 1), '"2025-01-01"'),
    ('say "hi"', r'"say \"hi\""'), ("back\\slash", r'"back\\slash"'),
])
def test_values_are_double_quoted_as_the_language_wants(value, written):
    assert quote(value) == written
    assert parse(f"x = {written}").value == (str(value).lower() if isinstance(value, bool) else str(value))


def test_lists_and_joins_follow_the_vendor_examples():
    assert compare("job_status", "IN", ["paused", "in play"]) == 'job_status in ["paused", "in play"]'
    assert compare("job_item_name", "contains", ["Pitch", "account management"]) == \
        'job_item_name contains ["Pitch", "account management"]'
    assert all_of('a = "1"', 'b = "2" or c = "3"') == 'a = "1" and (b = "2" or c = "3")'


def test_the_builder_refuses_what_the_language_cannot_say():
    for bad in (lambda: compare("job status", "=", "x"), lambda: compare("x", "like", "y"),
                lambda: compare("x", "in", []), lambda: quote(dt.datetime(2026, 1, 1)), lambda: quote(None)):
        with pytest.raises((ValueError, TypeError)):
            bad()


def test_the_grammar_reads_the_vendor_examples():
    tree = parse('job_status = "complete" and (job_name contains "Project Management" or '
                 'job_item_estimated_start_date > "2025-01-01")')
    assert tree == And((Comparison("job_status", "=", "complete"),
                        Or((Comparison("job_name", "contains", ("Project Management",)),
                            Comparison("job_item_estimated_start_date", ">", "2025-01-01")))))
    tree = parse('job_status IN ["paused", "in play"] AND billable = "true"')
    assert [c.selector for c in comparisons(tree)] == ["job_status", "billable"]
    assert parse('a NOT  CONTAINS ["x"]').operator == "not contains"
    assert parse('android = "1" or order_id != "2"') == Or((Comparison("android", "=", "1"), Comparison("order_id", "!=", "2")))


@pytest.mark.parametrize("text", ['x = 1', "x = 'a'", 'x = "a" and', '(x = "a"', 'x >> "a"', '= "a"', "", "   "])
def test_the_grammar_refuses_what_is_not_the_language(text):
    with pytest.raises(QuerySyntaxError):
        parse(text)
