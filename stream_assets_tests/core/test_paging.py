from stream_assets.core.paging import Page, offset_pages


def pages_of(rows, *, page_size, cap=None, with_total=False):
    calls = []

    def fetch(offset, limit):
        calls.append((offset, limit))
        chunk = rows[offset:offset + min(limit, cap or limit)]
        return Page(chunk, len(rows) if with_total else None)

    read = [row for page in offset_pages(fetch, page_size) for row in page.rows]
    return read, calls


def test_without_a_total_a_short_page_is_the_last():
    read, calls = pages_of(list(range(25)), page_size=10)
    assert read == list(range(25)) and calls == [(0, 10), (10, 10), (20, 10)]
    read, calls = pages_of(list(range(20)), page_size=10)
    assert read == list(range(20)) and calls == [(0, 10), (10, 10), (20, 10)]  # an empty page ends an exact fit


def test_with_a_total_a_capped_server_is_read_to_the_end():
    read, calls = pages_of(list(range(25)), page_size=10, cap=4, with_total=True)
    assert read == list(range(25)) and len(calls) == 7 and calls[1] == (4, 10)
    read, calls = pages_of(list(range(20)), page_size=10, with_total=True)
    assert calls == [(0, 10), (10, 10)]  # the total says we are done: no empty page needed


def test_the_caller_may_stop_early():
    calls = []

    def fetch(offset, limit):
        calls.append(offset)
        return Page(list(range(offset, offset + limit)), 1000)

    for page in offset_pages(fetch, 10):
        if page.rows[0] >= 20:
            break
    assert calls == [0, 10, 20]
