"""Offset paging, written once: Streamtime pages until a short page, StreamOne until ``count`` rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int | None = None  # how many rows the API says match, when it says so


def offset_pages(fetch: Callable[[int, int], Page], page_size: int) -> Iterator[Page]:
    """Pages from ``fetch(offset, limit)`` until everything is read.

    With a ``total``, reading stops once that many rows are read (a page shorter than asked is not the
    end: the server may cap the limit). Without one, a page shorter than ``page_size`` is the last. An
    empty page always ends it (rows vanished while paging). Lazy: the caller may stop early.
    """
    offset = 0
    while True:
        page = fetch(offset, page_size)
        if page.rows:
            yield page
        offset += len(page.rows)
        if not page.rows or (offset >= page.total if page.total is not None else len(page.rows) < page_size):
            return
