"""Pydantic models of Streamtime v2 records (camelCase on the wire, snake_case here and in the warehouse).

A ``NamedRef`` (``jobStatus``, ``invoiceStatus``, ...) is stored as its ``name``.
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class NamedRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int | None = None
    name: str | None = None


class Record(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: int

    def row(self) -> dict[str, Any]:
        return {name: (value.name if isinstance(value, NamedRef) else value)
                for name, value in ((n, getattr(self, n)) for n in type(self).model_fields)}

    @classmethod
    def columns(cls) -> list[tuple[str, str]]:
        """Warehouse columns from the field types."""
        kinds = {int: "BIGINT", float: "DOUBLE", str: "VARCHAR", bool: "BOOLEAN", dt.date: "DATE",
                 dt.datetime: "TIMESTAMP", NamedRef: "VARCHAR"}
        columns = []
        for name, field in cls.model_fields.items():
            annotation = field.annotation
            args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
            columns.append((name, kinds[args[0]]))
        return columns


class Job(Record):
    number: str
    name: str
    full_name: str | None = None
    company_id: int | None = None
    job_created_datetime: dt.datetime
    estimated_start_date: dt.date | None = None
    estimated_end_date: dt.date | None = None
    is_billable: bool | None = None
    job_status: NamedRef | None = None
    total_planned_minutes: float | None = None
    total_logged_minutes: float | None = None
    total_invoiced_ex_tax: float | None = None


class LoggedTime(Record):
    user_id: int
    job_id: int | None = None
    job_item_user_id: int | None = None
    date: dt.date
    minutes: float
    notes: str | None = None
    cost: float | None = None
    total_cost_ex_tax: float | None = None
    total_ex_tax: float | None = None
    completed_datetime: dt.datetime | None = None
    logged_time_status: NamedRef | None = None


class LoggedExpense(Record):
    job_id: int | None = None
    date: dt.date
    item_name: str | None = None
    quantity: float | None = None
    cost_rate: float | None = None
    sell_rate: float | None = None
    currency_code: str | None = None
    logged_expense_status: NamedRef | None = None


class Invoice(Record):
    number: str
    name: str | None = None
    job_id: int
    invoice_date: dt.date
    due_date: dt.date | None = None
    paid_date: dt.date | None = None
    currency_code: str | None = None
    invoice_status: NamedRef | None = None
    invoice_currency_total_amount_ex_tax: float | None = None
    invoice_currency_total_amount_inc_tax: float | None = None
    invoice_currency_balance: float | None = None


class Quote(Record):
    number: str
    name: str | None = None
    job_id: int
    quote_date: dt.date
    quote_status: NamedRef | None = None
    total_ex_tax: float | None = None


class Company(Record):
    name: str
    company_status: NamedRef | None = None


class Contact(Record):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company_id: int | None = None
    contact_status: NamedRef | None = None


class JobItem(Record):
    job_id: int
    name: str
    job_item_status: NamedRef | None = None
    total_planned_minutes: float | None = None
    total_logged_minutes: float | None = None


class JobItemUser(Record):
    job_item_id: int
    user_id: int
    planned_minutes: float | None = None
    logged_minutes: float | None = None


class User(Record):
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    role: NamedRef | None = None
