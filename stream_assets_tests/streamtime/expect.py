"""What the Streamtime emulator holds, in the shape the warehouse stores it: for comparing on key columns."""

import datetime as dt

from stream_assets.streamtime.emulator import pages_needed, snake_record


def normal(value) -> str:
    """A value as comparable text: numbers as floats, dates and UTC datetimes in ISO form."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return str(float(value))
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp (naive UTC in the warehouse)
        value = value.to_pydatetime().replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def expected_rows(emulator, entity, first=None, last=None) -> list[tuple]:
    """The emulator's records of the entity (of days first..last for dated views), on its key columns, by id."""
    records = [snake_record(r) for r in emulator.records(entity.view, first, last)]
    if entity.name == "jobs" and first is not None:  # searched on local days, kept by UTC creation time
        records = [r for r in records if first.isoformat() <= r["job_created_datetime"][:10] <= last.isoformat()]
    kinds = dict(entity.table.columns)

    def value(record, column):  # a text column stores an integer as its digits (a job's number)
        found = record.get(column)
        return str(found) if kinds[column] == "VARCHAR" and isinstance(found, int) else found
    return [tuple(normal(value(r, c)) for c in entity.key_columns) for r in records]


def key_rows(rows, entity) -> list[tuple]:
    """Rows (dicts, or a DataFrame) on the entity's key columns, by id."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    kinds = dict(entity.table.columns)

    def value(row, column):
        found = row[column]
        if found != found:  # NaN/NaT: NULL
            return None
        if kinds[column] == "DATE" and hasattr(found, "to_pydatetime"):  # pandas reads a DATE as a Timestamp
            return found.to_pydatetime().date()
        return found
    return [tuple(normal(value(r, c)) for c in entity.key_columns) for r in sorted(rows, key=lambda r: r["id"])]


def searches_needed(records: int, page_size: int = 1000) -> int:
    """Search requests a fresh client sends to read ``records``: the pages, plus one probe after a lone short
    page, which proves that the server does not cap pages below the size asked (core/paging.py). After a full
    page, a short page is the end without a probe."""
    return pages_needed(records, page_size) + (1 if 0 < records < page_size else 0)
