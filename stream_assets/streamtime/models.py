"""Pydantic models of the records Streamtime v2's search views return (reference/streamtime-v2.md §5).

camelCase on the wire, snake_case here and in the warehouse. Only a table's **key columns** are required
(plain annotations): a record without them, or with one that cannot be read, is refused. Every other
field is :data:`Tolerant`: absent means NULL, and a value of an unexpected type or format (a date that is
not ``YYYY-MM-DD``, text where a number belongs) also becomes NULL and is counted by field name in the
validation context (``context["not_understood"]``) instead of failing the page. Fields the model does not
know are ignored here; the entity table keeps each record as it came in its ``record`` JSON column.

A ``{id, name}`` lookup (``jobStatus``, ``invoiceStatus``, ...) is stored as its ``name``. Line-item
``quantity`` is a string on the wire (§5.3): it is read as a number when it is one.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections import Counter
from typing import Annotated, Any, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, WrapValidator
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


class NamedRef(BaseModel):
    """A ``{id, name}`` lookup whose names each organisation can rename."""

    model_config = ConfigDict(extra="ignore")
    id: Any = None
    name: Optional[str] = None


KINDS = {int: "BIGINT", float: "DOUBLE", str: "VARCHAR", bool: "BOOLEAN", dt.date: "DATE",
         dt.datetime: "TIMESTAMP", NamedRef: "VARCHAR"}


def _base_type(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _base_type(args[0]) if args else annotation


class Record(BaseModel):
    # NaN and infinities are never read as numbers: refused in a key column, NULL (and counted) elsewhere.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", allow_inf_nan=False)

    id: int

    def row(self) -> dict[str, Any]:
        return {name: (value.name if isinstance(value, NamedRef) else value)
                for name, value in ((n, getattr(self, n)) for n in type(self).model_fields)}

    @classmethod
    def columns(cls) -> list[tuple[str, str]]:
        """Warehouse columns (name, DuckDB type) from the field types."""
        return [(name, KINDS[_base_type(field.annotation)]) for name, field in cls.model_fields.items()]

    @classmethod
    def required(cls) -> list[str]:
        return [name for name, field in cls.model_fields.items() if field.is_required()]


class LoggedTime(Record):
    user_id: int
    # An entry belongs to a job or to a job item user (§5.1): the key must be present, and may be null.
    job_id: Optional[int]
    date: dt.date
    minutes: float
    job_item_user_id: Tolerant[int] = None
    logged_time_status: Tolerant[NamedRef] = None
    notes: Tolerant[str] = None
    private: Tolerant[bool] = None
    completed_datetime: Tolerant[dt.datetime] = None
    schedule_notes: Tolerant[str] = None
    cost: Tolerant[float] = None
    total_cost_ex_tax: Tolerant[float] = None
    total_ex_tax: Tolerant[float] = None


class LoggedExpense(Record):
    job_id: int
    date: dt.date
    item_name: str
    job_phase_id: Tolerant[int] = None
    type: Tolerant[str] = None
    logged_expense_status: Tolerant[str] = None  # a plain string here, unlike every other status (§5.2)
    logged_expense_status_id: Tolerant[int] = None
    required_date: Tolerant[dt.date] = None
    purchase_order_number: Tolerant[str] = None
    supplier_company_id: Tolerant[int] = None
    description: Tolerant[str] = None
    reference: Tolerant[str] = None
    quantity: Tolerant[float] = None
    cost_rate: Tolerant[float] = None
    sell_rate: Tolerant[float] = None
    currency_code: Tolerant[str] = None
    exchange_rate: Tolerant[float] = None
    markup: Tolerant[float] = None
    job_currency_total_ex_tax: Tolerant[float] = None
    user_id: Tolerant[int] = None


class Invoice(Record):
    number: str
    job_id: int
    invoice_date: dt.date
    name: Tolerant[str] = None
    reference: Tolerant[str] = None
    invoice_status: Tolerant[NamedRef] = None
    invoice_type: Tolerant[NamedRef] = None
    due_date: Tolerant[dt.date] = None
    paid_date: Tolerant[dt.date] = None
    currency_code: Tolerant[str] = None
    exchange_rate: Tolerant[float] = None
    invoice_currency_total_amount_ex_tax: Tolerant[float] = None
    invoice_currency_total_amount_inc_tax: Tolerant[float] = None
    invoice_currency_balance: Tolerant[float] = None


class Quote(Record):
    quote_number: str
    job_id: int
    quote_date: dt.date  # not in the reference's partial field list: assumed beside the quote_date selector
    quote_name: Tolerant[str] = None
    quote_status: Tolerant[NamedRef] = None
    quote_currency_total_amount_ex_tax: Tolerant[float] = None
    quote_currency_total_amount_inc_tax: Tolerant[float] = None
    approved_datetime: Tolerant[dt.datetime] = None
    created_user: Tolerant[str] = None  # a display name (§5.3)
    approved_by: Tolerant[str] = None


class Job(Record):
    number: str
    name: str
    job_created_datetime: dt.datetime
    full_name: Tolerant[str] = None
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
    name: Tolerant[str] = None
    description: Tolerant[str] = None
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
    name: Tolerant[str] = None
    company_status: Tolerant[NamedRef] = None
    tax_number: Tolerant[str] = None
    phone1: Tolerant[str] = None
    website_address: Tolerant[str] = None
    branch_id: Tolerant[int] = None
    rate_card_id: Tolerant[int] = None
    company_lead_user_id: Tolerant[int] = None


class Contact(Record):
    first_name: Tolerant[str] = None
    last_name: Tolerant[str] = None
    email: Tolerant[str] = None
    phone_number: Tolerant[str] = None
    position: Tolerant[str] = None
    contact_status: Tolerant[NamedRef] = None
    company_id: Tolerant[int] = None
    active: Tolerant[bool] = None


class User(Record):
    display_name: Tolerant[str] = None
    email: Tolerant[str] = None
    branch_id: Tolerant[int] = None
    role_id: Tolerant[int] = None  # null: the user has no role (§5.10)
    user_status: Tolerant[NamedRef] = None
    cost_rate: Tolerant[float] = None
    billable_rate: Tolerant[float] = None


class JobPhase(Record):
    job_id: Tolerant[int] = None
    name: Tolerant[str] = None
    order_id: Tolerant[int] = None


class JobMilestone(Record):
    job_id: Tolerant[int] = None
    job_item_id: Tolerant[int] = None
    name: Tolerant[str] = None
    date: Tolerant[dt.date] = None


class InvoiceLineItem(Record):
    invoice_id: Tolerant[int] = None
    name: Tolerant[str] = None
    quantity: Tolerant[float] = None  # a string on the wire, e.g. "2"
    unit_rate: Tolerant[float] = None
    total_amount_ex_tax: Tolerant[float] = None
    tax_name: Tolerant[str] = None
    account_code: Tolerant[str] = None


class QuoteLineItem(Record):
    quote_id: Tolerant[int] = None
    name: Tolerant[str] = None
    quantity: Tolerant[float] = None  # a string on the wire, e.g. "2"
    unit_rate: Tolerant[float] = None
    total_amount_ex_tax: Tolerant[float] = None


def not_understood(context: dict) -> Counter:
    return context.get("not_understood", Counter())
