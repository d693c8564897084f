import datetime as dt

import pytest

from stream_assets.core.windows import TimeWindow, floor_datetime, from_epoch_ms, to_epoch_ms

UTC = dt.timezone.utc


def test_day_window_maps_to_epoch_ms_at_utc_midnight():
    window = TimeWindow.for_days("2020-03-17")
    assert window.start_ms == 1584403200000
    assert window.end_ms == 1584489600000
    assert str(window) == "2020-03-17"


def test_naive_datetimes_are_taken_as_utc_and_aware_ones_converted():
    aware = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert TimeWindow(aware, aware + dt.timedelta(hours=1)).start == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert from_epoch_ms(to_epoch_ms(dt.datetime(2026, 3, 1, 12))) == dt.datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_range_splits_into_days_and_chunks():
    window = TimeWindow.for_days("2026-02-27", "2026-03-02")
    assert [str(day) for day in window.days()] == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert window.last_day == dt.date(2026, 3, 2)
    assert [str(c) for c in window.chunks(dt.timedelta(days=3))] == ["2026-02-27..2026-03-01", "2026-03-02"]


def test_partial_window_keeps_partial_days_and_clips():
    start = dt.datetime(2026, 3, 1, 22, tzinfo=UTC)
    window = TimeWindow(start, start + dt.timedelta(hours=4))
    assert [(d.start.hour, d.end.hour) for d in window.days()] == [(22, 0), (0, 2)]
    assert window.clipped_to(start + dt.timedelta(hours=1)).end == start + dt.timedelta(hours=1)
    assert window.clipped_to(start) is None


def test_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty time window"):
        TimeWindow.for_days("2026-03-02", "2026-03-01")


def test_floor_aligns_to_epoch_multiples():
    assert floor_datetime(dt.datetime(2020, 3, 17, 10, 35, tzinfo=UTC), dt.timedelta(minutes=10)) == dt.datetime(
        2020, 3, 17, 10, 30, tzinfo=UTC
    )
