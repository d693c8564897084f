"""Offset paging, written once, that proves it read everything or fails.

Rules (``offset_pages``):
- A page never holds more rows than asked, and never repeats the previous page (a server ignoring
  ``offset`` would otherwise be read forever, or read as duplicates).
- With a reported ``total`` (StreamOne's ``header.count``): reading stops once ``total`` rows are read
  and the last page was short (a full last page is followed by one probe, which must be empty). Reading
  more rows than reported, running out before it, or a total that changes while paging is an error.
  Pages shorter than asked before the total is reached are fine: the count proves where the end is.
- Without a total (Streamtime): a short page is the end, once a probe at the next offset comes back
  empty; rows after a short page mean the server caps pages below the size asked. The probe is skipped
  when the server has already served a larger page to this caller (:class:`ServedPageSizes`): a server
  that served ``n`` rows in one page does not cap pages below ``n``, so a shorter page is the end.
- At most ``max_pages`` pages.
Any violation raises :class:`IncompleteAnswerError` (API and endpoint named), so the partition is not
replaced by a partial answer. Lazy: the caller may stop early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from stream_assets.core.errors import IncompleteAnswerError

DEFAULT_MAX_PAGES = 10_000


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int | None = None  # how many rows the API says match, when it says so


@dataclass
class ServedPageSizes:
    """The largest page a server has served to one caller (a client, for the length of a run): evidence
    that it does not cap pages below that size. Shared by every listing of the caller, so that only a
    short page at least as large as any seen before costs a probe."""

    largest: int = 0

    def proves_end(self, rows: int) -> bool:
        return rows < self.largest


def offset_pages(
    fetch: Callable[[int, int], Page],
    page_size: int,
    *,
    api: str = "api",
    endpoint: str = "paging",
    max_pages: int = DEFAULT_MAX_PAGES,
    probe_after_short_page: bool = True,
    served: ServedPageSizes | None = None,
) -> Iterator[Page]:
    """Pages from ``fetch(offset, limit)`` until the answer is provably complete (see the module doc).

    ``probe_after_short_page=False`` trusts a short page as the end without a total (one request less,
    but a server capping pages goes unnoticed). ``served`` carries what earlier listings of the same
    caller proved about the server's page sizes, and learns from this one.
    """
    served = served if served is not None else ServedPageSizes()

    def incomplete(message: str) -> IncompleteAnswerError:
        return IncompleteAnswerError(api, endpoint, message)

    offset = 0
    previous: list[Any] | None = None
    total: int | None = None
    short_seen_at: int | None = None  # offset of the first short page (no total)
    pages = 0
    while True:
        if pages >= max_pages:
            raise incomplete(f"more than {max_pages} pages of {page_size} rows: stopped without reaching the end")
        page = fetch(offset, page_size)
        pages += 1
        rows = page.rows
        if len(rows) > page_size:
            raise incomplete(f"page at offset {offset} has {len(rows)} rows, more than the {page_size} asked")
        if rows and previous is not None and rows == previous:
            raise incomplete(f"page at offset {offset} repeats the previous page: the server ignores the offset")
        if page.total is not None:
            if total is not None and page.total != total:
                raise incomplete(f"the reported count changed from {total} to {page.total} while paging")
            total = page.total
        if total is not None:
            if offset + len(rows) > total:
                raise incomplete(f"read {offset + len(rows)} rows but the server reported only {total}: "
                                 "its count is understated")
            if not rows and offset < total:
                raise incomplete(f"the server reported {total} rows but served only {offset}")
        elif short_seen_at is not None and rows:
            raise incomplete(f"the page at offset {short_seen_at} was shorter than the {page_size} rows asked, "
                             f"yet more rows followed: the server caps its pages")
        if rows:
            yield page
        short_proven_end = served.proves_end(len(rows))
        served.largest = max(served.largest, len(rows))
        offset += len(rows)
        previous = rows
        if not rows:
            return
        if total is not None:
            if offset == total and len(rows) < page_size:
                return
            # A full page ending exactly at the count, or a capped page: read on (the next page proves it).
            continue
        if len(rows) < page_size:
            if not probe_after_short_page or short_proven_end:
                return
            short_seen_at = offset - len(rows)
