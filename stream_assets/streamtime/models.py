"""Pydantic models of the records Streamtime v2's search views return (reference/streamtime-v2.md §5).

camelCase on the wire, snake_case here and in the warehouse. Only ``id`` is required of every record, and
the date a dated entity is partitioned on (without it the record belongs to no partition). The other **key
columns** (plain annotations: ``number``, ``jobId``, ``minutes``, ...) may be absent or null and are then
NULL, but a value that cannot be read is refused with the page. Every other field is :data:`Tolerant`:
absent means NULL, and a value of an unexpected type or format (a date that is not ``YYYY-MM-DD``, text
where a number belongs) also becomes NULL and is counted by field name in the validation context
(``context["not_understood"]``) instead of failing the page. Text fields (:data:`Text`) take a string or an
integer: public v2 type definitions give a job's ``number`` as a number or null, where the reference shows
text. Fields the model does not know are ignored here; the entity table keeps each record as it came in its
``record`` JSON column.

A ``{id, name}`` lookup (``jobStatus``, ``invoiceStatus``, ...) is stored as its ``name``. Line-item
``quantity`` is a string on the wire (§5.3): it is read as a number when it is one.
"""

from __future__ import annotations

import datetime as dt
import json
import typing
from collections import Counter
from typing import Annotated, Any, ClassVar, Optional, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, WrapValidator
from pydantic.alias_generators import to_camel

T = TypeVar("T")


def _tolerate(value: Any, handler: Any, info: ValidationInfo) -> Any:
    try:
        return handler(value)
    except ValidationError:
        if isinstance(info.context, dict):
            info.context.setdefault("not_understood", Counter())[info.field_name] += 1
        return None


Tolerant = Annotated[Optional[T], WrapValidator(_tolerate)]


def _integer_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Text that may come as an integer (``"J1042"`` or ``1042``): stored as text either way.
Text = Annotated[str, BeforeValidator(_integer_as_text)]


class NamedRef(BaseModel):
    """A ``{id, name}`` lookup whose names each organisation can rename."""

    model_config = ConfigDict(extra="ignore")
    id: Any = None
    name: Optional[str] = None


KINDS = {int: "BIGINT", float: "DOUBLE", str: "VARCHAR", bool: "BOOLEAN", dt.date: "DATE",
         dt.datetime: "TIMESTAMP", NamedRef: "VARCHAR", list: "JSON"}


def _integer_or_none(value: Any) -> int | None:
    """A lookup's id as an integer, else None (an id is not a key column: an odd one is not worth a page)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _base_type(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _base_type(args[0]) if args else annotation


class Record(BaseModel):
    # NaN and infinities are never read as numbers: refused in a key column, NULL (and counted) elsewhere.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", allow_inf_nan=False)
    # Lookups stored as their id too (``<field>_id`` beside the name), where the id is worth keeping.
    lookup_ids: ClassVar[tuple[str, ...]] = ()

    id: int

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, NamedRef):
                row[name] = value.name
            elif isinstance(value, list):
                row[name] = json.dumps(value)
            else:
                row[name] = value
            if name in self.lookup_ids:
                row[f"{name}_id"] = _integer_or_none(value.id) if isinstance(value, NamedRef) else None
        return row

    @classmethod
    def columns(cls) -> list[tuple[str, str]]:
        """Warehouse columns (name, DuckDB type) from the field types."""
        columns = []
        for name, field in cls.model_fields.items():
            columns.append((name, KINDS[_base_type(field.annotation)]))
            if name in cls.lookup_ids:
                columns.append((f"{name}_id", "BIGINT"))
        return columns

    @classmethod
    def required(cls) -> list[str]:
        """The fields every record must carry: ``id``, and the date of a dated entity."""
        return [name for name, field in cls.model_fields.items() if field.is_required()]

    @classmethod
    def key_columns(cls) -> list[str]:
        """The table's key columns: the fields read strictly (not :data:`Tolerant`), required or not."""
        return [name for name, field in cls.model_fields.items()
                if not any(isinstance(m, WrapValidator) and m.func is _tolerate for m in field.metadata)]


class LoggedTime(Record):
    user_id: Optional[int] = None
    # An entry belongs to a job or to a job item user (§5.1): null when it belongs to a job item user.
    job_id: Optional[int] = None
    date: dt.date
    minutes: Optional[float] = None
    job_item_user_id: Tolerant[int] = None
    logged_time_status: Tolerant[NamedRef] = None
    notes: Tolerant[Text] = None
    private: Tolerant[bool] = None
    completed_datetime: Tolerant[dt.datetime] = None
    schedule_notes: Tolerant[Text] = None
    cost: Tolerant[float] = None
    total_cost_ex_tax: Tolerant[float] = None
    total_ex_tax: Tolerant[float] = None


class LoggedExpense(Record):
    job_id: Optional[int] = None
    date: dt.date
    item_name: Optional[Text] = None
    job_phase_id: Tolerant[int] = None
    type: Tolerant[Text] = None
    logged_expense_status: Tolerant[Text] = None  # a plain string here, unlike every other status (§5.2)
    logged_expense_status_id: Tolerant[int] = None
    required_date: Tolerant[dt.date] = None
    purchase_order_number: Tolerant[Text] = None
    supplier_company_id: Tolerant[int] = None
    description: Tolerant[Text] = None
    reference: Tolerant[Text] = None
    quantity: Tolerant[float] = None
    cost_rate: Tolerant[float] = None
    sell_rate: Tolerant[float] = None
    currency_code: Tolerant[Text] = None
    exchange_rate: Tolerant[float] = None
    markup: Tolerant[float] = None
    job_currency_total_ex_tax: Tolerant[float] = None
    user_id: Tolerant[int] = None


class Invoice(Record):
    number: Optional[Text] = None
    job_id: Optional[int] = None
    invoice_date: dt.date
    name: Tolerant[Text] = None
    reference: Tolerant[Text] = None
    invoice_status: Tolerant[NamedRef] = None
    invoice_type: Tolerant[NamedRef] = None
    due_date: Tolerant[dt.date] = None
    paid_date: Tolerant[dt.date] = None
    currency_code: Tolerant[Text] = None
    exchange_rate: Tolerant[float] = None
    invoice_currency_total_amount_ex_tax: Tolerant[float] = None
    invoice_currency_total_amount_inc_tax: Tolerant[float] = None
    invoice_currency_balance: Tolerant[float] = None


class Quote(Record):
    quote_number: Optional[Text] = None
    job_id: Optional[int] = None
    quote_date: dt.date  # not in the reference's partial field list: assumed beside the quote_date selector
    quote_name: Tolerant[Text] = None
    quote_status: Tolerant[NamedRef] = None
    quote_currency_total_amount_ex_tax: Tolerant[float] = None
    quote_currency_total_amount_inc_tax: Tolerant[float] = None
    approved_datetime: Tolerant[dt.datetime] = None
    created_user: Tolerant[Text] = None  # a display name (§5.3)
    approved_by: Tolerant[Text] = None


class Job(Record):
    number: Optional[Text] = None  # a number or null in public v2 type definitions, text in the reference
    name: Optional[Text] = None
    job_created_datetime: dt.datetime
    full_name: Tolerant[Text] = None
    company_id: Tolerant[int] = None
    contact_id: Tolerant[int] = None
    job_lead_user_id: Tolerant[int] = None
    branch_id: Tolerant[int] = None
    job_status: Tolerant[NamedRef] = None
    is_billable: Tolerant[bool] = None
    estimated_start_date: Tolerant[dt.date] = None
    estimated_end_date: Tolerant[dt.date] = None
    total_planned_minutes: Tolerant[float] = None
    total_logged_minutes: Tolerant[float] = None
    total_logged_ex_tax: Tolerant[float] = None
    total_invoiced_ex_tax: Tolerant[float] = None


class JobItem(Record):
    job_id: Tolerant[int] = None
    job_phase_id: Tolerant[int] = None
    name: Tolerant[Text] = None
    description: Tolerant[Text] = None
    job_item_status: Tolerant[NamedRef] = None
    sell_rate: Tolerant[float] = None
    costing_method: Tolerant[NamedRef] = None
    time_allocation_method: Tolerant[NamedRef] = None
    is_billable: Tolerant[bool] = None
    total_planned_minutes: Tolerant[float] = None
    total_incomplete_minutes: Tolerant[float] = None
    total_logged_minutes: Tolerant[float] = None
    estimated_start_date: Tolerant[dt.date] = None
    estimated_end_date: Tolerant[dt.date] = None
    completed_date: Tolerant[dt.date] = None
    order_id: Tolerant[int] = None


class JobItemUser(Record):
    job_item_id: Tolerant[int] = None
    user_id: Tolerant[int] = None
    job_item_user_status: Tolerant[NamedRef] = None
    job_currency_sell_rate: Tolerant[float] = None
    total_planned_minutes: Tolerant[float] = None
    total_incomplete_minutes: Tolerant[float] = None
    total_logged_minutes: Tolerant[float] = None
    completed_date: Tolerant[dt.date] = None
    earliest_start_date: Tolerant[dt.date] = None


class Company(Record):
    name: Tolerant[Text] = None
    company_status: Tolerant[NamedRef] = None
    tax_number: Tolerant[Text] = None
    phone1: Tolerant[Text] = None
    website_address: Tolerant[Text] = None
    branch_id: Tolerant[int] = None
    rate_card_id: Tolerant[int] = None
    company_lead_user_id: Tolerant[int] = None


class Contact(Record):
    first_name: Tolerant[Text] = None
    last_name: Tolerant[Text] = None
    email: Tolerant[Text] = None
    phone_number: Tolerant[Text] = None
    position: Tolerant[Text] = None
    contact_status: Tolerant[NamedRef] = None
    company_id: Tolerant[int] = None
    active: Tolerant[bool] = None


class User(Record):
    lookup_ids: ClassVar[tuple[str, ...]] = ("user_status",)

    display_name: Tolerant[Text] = None
    first_name: Tolerant[Text] = None
    last_name: Tolerant[Text] = None
    email: Tolerant[Text] = None
    branch_id: Tolerant[int] = None
    role_id: Tolerant[int] = None  # null: the user has no role (§5.10)
    user_status: Tolerant[NamedRef] = None  # stored as user_status (its name) and user_status_id
    cost_rate: Tolerant[float] = None
    billable_rate: Tolerant[float] = None
    # The hours the user normally works each day (public v2 type definitions).
    hours_worked_monday: Tolerant[float] = None
    hours_worked_tuesday: Tolerant[float] = None
    hours_worked_wednesday: Tolerant[float] = None
    hours_worked_thursday: Tolerant[float] = None
    hours_worked_friday: Tolerant[float] = None
    hours_worked_saturday: Tolerant[float] = None
    hours_worked_sunday: Tolerant[float] = None
    labels: Tolerant[list] = None  # stored as JSON


class JobPhase(Record):
    job_id: Tolerant[int] = None
    name: Tolerant[Text] = None
    order_id: Tolerant[int] = None


class JobMilestone(Record):
    job_id: Tolerant[int] = None
    job_item_id: Tolerant[int] = None
    name: Tolerant[Text] = None
    date: Tolerant[dt.date] = None


class InvoiceLineItem(Record):
    invoice_id: Tolerant[int] = None
    name: Tolerant[Text] = None
    quantity: Tolerant[float] = None  # a string on the wire, e.g. "2"
    unit_rate: Tolerant[float] = None
    total_amount_ex_tax: Tolerant[float] = None
    tax_name: Tolerant[Text] = None
    account_code: Tolerant[Text] = None


class QuoteLineItem(Record):
    quote_id: Tolerant[int] = None
    name: Tolerant[Text] = None
    quantity: Tolerant[float] = None  # a string on the wire, e.g. "2"
    unit_rate: Tolerant[float] = None
    total_amount_ex_tax: Tolerant[float] = None


def not_understood(context: dict) -> Counter:
    return context.get("not_understood", Counter())
