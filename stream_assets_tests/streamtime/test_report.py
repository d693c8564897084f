"""Reading /report answers, which have no published schema: the shapes assumed, and refusal of the rest."""

import datetime as dt

import pytest

from stream_assets.streamtime.report import ReportUnreadable, Statistic, daily_buckets, totals

COUNT, MINUTES = Statistic("count"), Statistic("sum", "minutes")
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]


@pytest.mark.parametrize("answer", [
    {"totals": {"count": 3, "sum_minutes": 90}},
    {"count": 3, "sum_minutes": 90},
    {"totals": {"count": 3, "minutes": {"sum": 90}}},
    {"totals": {"count": 3, "sum": 90}},  # one statistic per mode: the mode alone names it
])
def test_totals_are_found_in_each_assumed_shape(answer):
    assert totals(answer, [COUNT, MINUTES]) == [3.0, 90.0]


@pytest.mark.parametrize("answer", [
    [], "42", {"totals": {"count": 3}}, {"totals": {"count": "3", "sum_minutes": 1}}, {"totals": {"count": True, "sum_minutes": 1}},
    {"totals": {"count": 1, "sum": 1, "sum_other": 2}},
])
def test_an_answer_without_the_figures_is_unreadable(answer):
    with pytest.raises(ReportUnreadable):
        totals(answer, [COUNT, MINUTES] + ([Statistic("sum", "other")] if "sum_other" in str(answer) else []))


def test_buckets_are_used_only_when_proven_daily():
    daily = {"timeBreakdown": [{"startDate": "2026-03-02", "endDate": "2026-03-02", "totals": {"count": 1, "sum_minutes": 30}},
                               {"date": "2026-03-03", "count": 2, "sum_minutes": 60}]}
    assert daily_buckets(daily, DAYS, [COUNT, MINUTES]) == {DAYS[0]: [1.0, 30.0], DAYS[1]: [2.0, 60.0]}
    weekly = {"timeBreakdown": [{"startDate": "2026-03-02", "endDate": "2026-03-08", "totals": {"count": 3, "sum_minutes": 90}}]}
    assert daily_buckets(weekly, DAYS, [COUNT, MINUTES]) is None
    wide = {"buckets": [{"startDate": "2026-03-02", "endDate": "2026-03-03", "count": 1, "sum_minutes": 1},
                        {"startDate": "2026-03-03", "endDate": "2026-03-04", "count": 1, "sum_minutes": 1}]}
    assert daily_buckets(wide, DAYS, [COUNT, MINUTES]) is None
    assert daily_buckets({"totals": {"count": 1}}, DAYS, [COUNT]) is None  # no bucket list: ask day by day
    other_days = {"periods": [{"start": "2026-03-01", "count": 1}, {"start": "2026-03-02", "count": 1}]}
    assert daily_buckets(other_days, DAYS, [COUNT]) is None
    with pytest.raises(ReportUnreadable):
        daily_buckets({"timeBreakdown": [{"date": "2026-03-02", "x": 1}, {"date": "2026-03-03", "x": 1}]}, DAYS, [COUNT])
