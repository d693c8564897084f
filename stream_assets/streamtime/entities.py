"""The Streamtime entities as data: search view, wrapper key, date selectors, additional data, model.

Adding an entity means adding a row. Selector names are never hard-wired into a request: each row lists
the date selectors it prefers, in order, and the client resolves them against the view's
``GET /search/setup`` (design.md, "Streamtime: the published v2 contract").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_assets.core.warehouse import Table
from stream_assets.streamtime import models

SCHEMA = "streamtime"
RECORD_COLUMN = ("record", "JSON")  # each record as it came, so a field Streamtime adds later is kept


@dataclass(frozen=True)
class Entity:
    name: str  # asset and table name
    view: str  # the search_view name
    model: type[models.Record]
    record_key: str  # the wrapper key the older v2 used (confirmed for loggedTime, job, company, contact)
    date_field: str | None = None  # the record's natural date (snake_case): daily partitions; None: a snapshot
    date_selectors: tuple[str, ...] = ()  # preferred date selectors of the view, first listed wins
    # additional data the asset stores: additionalData key -> (column, attribute of the additional object)
    additional: dict[str, tuple[str, str]] = field(default_factory=dict)
    # closed days the source may still change (the refresh lookback; README, "Keeping up with the source")
    refresh_lookback_days: int = 0

    @property
    def partitioned(self) -> bool:
        return self.date_field is not None

    @property
    def search_view(self) -> str:
        return self.view

    @property
    def key_columns(self) -> list[str]:
        """The table's key columns (read strictly; only ``id`` and a dated entity's date are required)."""
        return self.model.key_columns()

    @property
    def table(self) -> Table:
        columns = (self.model.columns() + [(column, "VARCHAR") for column, _ in self.additional.values()]
                   + [RECORD_COLUMN])
        # Each record is one row by its id; durations in minutes are never negative (design.md, "Data the
        # warehouse may hold").
        minutes = tuple(name for name, _ in columns if name == "minutes" or name.endswith("_minutes"))
        return Table(SCHEMA, self.name, columns, self.date_field, key=("id",), non_negative=minutes)


ENTITIES: tuple[Entity, ...] = (
    # Time and expenses are logged late and corrected until timesheets are approved (two weekly cycles);
    # invoices and quotes are edited, re-dated and voided until the month is closed; a job's created day
    # only gains the jobs created late on it, its later edits are kept by the snapshot-like refresh of a week.
    Entity("logged_times", "time", models.LoggedTime, "loggedTime", "date", ("logged_time_date", "date"),
           additional={"jobItem": ("job_item_name", "name")}, refresh_lookback_days=14),
    Entity("logged_expenses", "expenses", models.LoggedExpense, "loggedExpense", "date",
           ("logged_expense_date", "date"), refresh_lookback_days=14),
    Entity("invoices", "invoices", models.Invoice, "invoice", "invoice_date", ("invoice_date",),
           refresh_lookback_days=35),
    Entity("quotes", "quotes", models.Quote, "quote", "quote_date", ("quote_date",), refresh_lookback_days=35),
    Entity("jobs", "jobs", models.Job, "job", "job_created_datetime", ("job_created_date", "job_created_datetime"),
           refresh_lookback_days=7),
    Entity("job_items", "job_items", models.JobItem, "jobItem"),
    Entity("job_item_users", "job_item_users", models.JobItemUser, "jobItemUser"),
    Entity("job_phases", "job_phases", models.JobPhase, "jobPhase"),
    Entity("job_milestones", "job_milestones", models.JobMilestone, "jobMilestone"),
    Entity("invoice_line_items", "invoice_line_items", models.InvoiceLineItem, "invoiceLineItem"),
    Entity("quote_line_items", "quote_line_items", models.QuoteLineItem, "quoteLineItem"),
    Entity("companies", "companies", models.Company, "company"),
    Entity("contacts", "contacts", models.Contact, "contact", additional={"company": ("company_name", "name")}),
    Entity("users", "users", models.User, "user"),
)
BY_NAME = {entity.name: entity for entity in ENTITIES}
BY_VIEW = {entity.view: entity for entity in ENTITIES}

# Column descriptions for `dagster/column_schema`, from the v2 reference (shared/reference/streamtime-v2.md §5);
# a column not listed here carries no description.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "id": "The record's Streamtime id",
    "user_id": "The user whose time or expense it is",
    "job_id": "The job the record belongs to (null for time logged on a job item user)",
    "job_item_user_id": "The job item user (schedule entry) time was logged against",
    "job_item_id": "The job item",
    "job_phase_id": "The job phase",
    "date": "The record's own date (YYYY-MM-DD in the organisation's calendar)",
    "minutes": "Minutes logged",
    "notes": "Free-text notes of the entry",
    "logged_time_status": "Status name of the logged time",
    "number": "The job's or invoice's number: a number or text on the wire, stored as text (NULL allowed)",
    "name": "Display name",
    "full_name": "Job number and name together, as Streamtime shows them",
    "invoice_date": "The invoice's date",
    "due_date": "When the invoice is due",
    "paid_date": "When the invoice was paid",
    "invoice_status": "Status name of the invoice",
    "quote_number": "The quote's number",
    "quote_name": "The quote's name",
    "quote_date": "The quote's date (assumed beside the quote_date selector)",
    "job_created_datetime": "When the job was created (UTC)",
    "job_status": "Status name of the job",
    "company_id": "The client company",
    "contact_id": "The client contact",
    "is_billable": "Whether the work is billable",
    "total_planned_minutes": "Planned minutes",
    "total_logged_minutes": "Logged minutes",
    "role_id": "The user's role id (null: no role)",
    "user_status": "Status name of the user",
    "user_status_id": "Status id of the user",
    "first_name": "First name",
    "last_name": "Last name",
    "labels": "The user's labels as they came (JSON)",
    "quantity": "Quantity (text on the wire, read as a number)",
    "job_item_name": "Additional data: the name of the entry's job item",
    "company_name": "Additional data: the contact's company name",
    "record": "The record exactly as Streamtime sent it (JSON), so fields added later are kept",
}
