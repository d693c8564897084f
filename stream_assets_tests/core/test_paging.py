import pytest

from stream_assets.core.errors import IncompleteAnswerError
from stream_assets.core.paging import Page, ServedPageSizes, offset_pages


def pages_of(rows, *, page_size, cap=None, with_total=False, total=None, ignore_offset=False, **options):
    calls = []

    def fetch(offset, limit):
        calls.append((offset, limit))
        start = 0 if ignore_offset else offset
        chunk = rows[start:start + min(limit, cap or limit)]
        return Page(chunk, total if total is not None else (len(rows) if with_total else None))

    read = [row for page in offset_pages(fetch, page_size, api="Test", endpoint="thing/view", **options)
            for row in page.rows]
    return read, calls


def test_without_a_total_a_short_page_is_the_last_once_a_probe_comes_back_empty():
    read, calls = pages_of(list(range(5)), page_size=10)
    assert read == list(range(5)) and calls == [(0, 10), (5, 10)]
    # After a full page, the server is known not to cap below 10 rows: a short page is the end.
    read, calls = pages_of(list(range(25)), page_size=10)
    assert read == list(range(25)) and calls == [(0, 10), (10, 10), (20, 10)]
    read, calls = pages_of(list(range(20)), page_size=10)
    assert read == list(range(20)) and calls == [(0, 10), (10, 10), (20, 10)]  # an empty page ends an exact fit
    read, calls = pages_of(list(range(25)), page_size=10, probe_after_short_page=False)
    assert read == list(range(25)) and calls == [(0, 10), (10, 10), (20, 10)]


def test_a_larger_page_served_to_the_same_caller_spares_later_probes():
    served = ServedPageSizes()
    _, calls = pages_of(list(range(7)), page_size=10, served=served)
    assert calls == [(0, 10), (7, 10)] and served.largest == 7
    _, calls = pages_of(list(range(6)), page_size=10, served=served)
    assert calls == [(0, 10)]  # 6 < 7 rows already served in one page: not a cap
    _, calls = pages_of(list(range(7)), page_size=10, served=served)
    assert calls == [(0, 10), (7, 10)]  # as large as the largest seen: could be a cap at 7, so probed


def test_without_a_total_a_server_capping_pages_is_refused():
    with pytest.raises(IncompleteAnswerError, match="caps its pages") as caught:
        pages_of(list(range(752)), page_size=1000, cap=100)
    assert (caught.value.api, caught.value.endpoint, caught.value.transient) == ("Test", "thing/view", False)


def test_with_a_total_a_capped_server_is_read_to_the_end():
    read, calls = pages_of(list(range(25)), page_size=10, cap=4, with_total=True)
    assert read == list(range(25)) and len(calls) == 7 and calls[1] == (4, 10)
    read, calls = pages_of(list(range(25)), page_size=10, with_total=True)
    assert calls == [(0, 10), (10, 10), (20, 10)]  # the short last page agrees with the count
    read, calls = pages_of(list(range(20)), page_size=10, with_total=True)
    assert read == list(range(20)) and calls == [(0, 10), (10, 10), (20, 10)]  # a full last page is probed


def test_a_count_contradicted_by_the_rows_is_refused():
    with pytest.raises(IncompleteAnswerError, match="understated"):
        pages_of(list(range(250)), page_size=100, total=150)
    with pytest.raises(IncompleteAnswerError, match="understated"):
        pages_of(list(range(250)), page_size=100, total=200)  # the probe after the full page finds more
    with pytest.raises(IncompleteAnswerError, match="reported 500 rows but served only 30"):
        pages_of(list(range(30)), page_size=100, total=500)


def test_a_server_ignoring_the_offset_is_refused_not_read_forever():
    with pytest.raises(IncompleteAnswerError, match="repeats the previous page"):
        pages_of(list(range(250)), page_size=100, ignore_offset=True)
    with pytest.raises(IncompleteAnswerError, match="repeats the previous page"):
        pages_of(list(range(250)), page_size=100, ignore_offset=True, with_total=True)
    with pytest.raises(IncompleteAnswerError, match="repeats the previous page"):
        pages_of(list(range(30)), page_size=100, ignore_offset=True)  # the probe gets the same short page


def test_paging_has_a_hard_page_limit():
    with pytest.raises(IncompleteAnswerError, match="more than 3 pages"):
        pages_of(list(range(100)), page_size=10, max_pages=3)


def test_the_caller_may_stop_early():
    calls = []

    def fetch(offset, limit):
        calls.append(offset)
        return Page(list(range(offset, offset + limit)), 1000)

    for page in offset_pages(fetch, 10):
        if page.rows[0] >= 20:
            break
    assert calls == [0, 10, 20]
