"""The Streamtime entities as data: search view, wrapper key, date filter, additional data, model.

Adding an entity means adding a row. Ids marked ``assumed`` are not in the public evidence
(reference/apis.md, Streamtime Unknowns 2); the emulator serves them, and a real organisation may need
another id (change the row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_assets.core.warehouse import Table
from stream_assets.streamtime import models

SCHEMA = "streamtime"


@dataclass(frozen=True)
class Entity:
    name: str  # asset and table name
    model: type[models.Record]
    record_key: str  # the wrapper key holding the record in a v2 search result
    search_view: int | None  # None: not searchable, read from a list route
    list_path: str | None = None  # for list routes, e.g. "users"
    date_field: str | None = None  # the record's natural date: daily partitions; None: a snapshot
    date_filter: int | None = None  # filterGroupTypeId filtering on that date
    # additional data the asset stores: wrapper key -> (column, attribute of the additional record)
    additional: dict[str, tuple[str, str]] = field(default_factory=dict)
    assumed: str = ""

    @property
    def partitioned(self) -> bool:
        return self.date_field is not None

    @property
    def table(self) -> Table:
        columns = self.model.columns() + [(column, "VARCHAR") for column, _ in self.additional.values()]
        window_column = None
        if self.date_field:
            window_column = self.date_field
        return Table(SCHEMA, self.name, columns, window_column)


ENTITIES: tuple[Entity, ...] = (
    Entity("logged_times", models.LoggedTime, "loggedTime", 8, date_field="date", date_filter=5,
           additional={"jobItem": ("job_item_name", "name")}),
    Entity("logged_expenses", models.LoggedExpense, "loggedExpense", 14, date_field="date", date_filter=5,
           assumed="search view 14 and date filter 5 for logged expenses are assumptions"),
    Entity("invoices", models.Invoice, "invoice", 10, date_field="invoice_date", date_filter=35),
    Entity("quotes", models.Quote, "quote", 11, date_field="quote_date", date_filter=38),
    Entity("jobs", models.Job, "job", 7, date_field="job_created_datetime", date_filter=51),
    Entity("job_items", models.JobItem, "jobItem", 16),
    Entity("job_item_users", models.JobItemUser, "jobItemUser", 17),
    Entity("companies", models.Company, "company", 12),
    Entity("contacts", models.Contact, "contact", 13, additional={"company": ("company_name", "name")}),
    Entity("users", models.User, "user", None, list_path="users"),
)
BY_NAME = {entity.name: entity for entity in ENTITIES}
BY_VIEW = {entity.search_view: entity for entity in ENTITIES if entity.search_view is not None}
# Additional data each search view can return (reference/apis.md: contacts -> company, companyLeadUser;
# logged time -> jobItem; jobs -> company). Anything else is refused by the emulator with a 400.
ADDITIONAL_DATA = {8: ("jobItem",), 13: ("company", "companyLeadUser"), 7: ("company",)}
