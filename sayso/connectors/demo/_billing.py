"""The demo billing (ERP) system: customers, their invoices and credit notes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from ..base import Record
from ..operations import Amount, Params, Text
from ._crm import ACCOUNTS
from ._store import INTEGER, TEXT, DemoSystem, Op, Outcome, Table, Tx, mark_created

CUSTOMER = Table("Customer", "customers", {"name": TEXT})
INVOICE = Table(
    "Invoice", "invoices", {"account": TEXT, "amount": INTEGER, "status": TEXT, "due": TEXT},
    title=None, search=("account",),
)
CREDIT_NOTE = Table(
    "CreditNote", "credit_notes", {"account": TEXT, "amount": INTEGER, "reason": TEXT, "status": TEXT},
    title=None, search=("account",),
)


class ListInvoices(Params):
    account: str | None = None
    status: Literal["draft", "sent", "paid", "overdue"] | None = None


class IssueCreditNote(Params):
    account: Text
    amount: Amount
    reason: Text


def list_invoices(tx: Tx, p: ListInvoices) -> list[Record]:
    where: list[str] = []
    params: list[Any] = []
    if p.account is not None:
        where.append("account = ? COLLATE NOCASE")
        params.append(p.account)
    if p.status is not None:
        where.append("status = ?")
        params.append(p.status)
    return tx.records(INVOICE, " AND ".join(where) or "1", params)


def issue_credit_note(tx: Tx, p: IssueCreditNote) -> Outcome:
    """A credit note reduces what a customer owes; the customer must exist in billing."""
    tx.row(CUSTOMER, p.account)
    note = f"CN-{tx.next_number('credit_note')}"
    values = {"account": p.account, "amount": p.amount, "reason": p.reason, "status": "issued"}
    change = tx.create(CREDIT_NOTE, note, values)
    return Outcome([change], f"issued {note} of {p.amount:,} to {p.account}", {"id": note})


class Billing(DemoSystem):
    """Invoices and credit notes, as an ERP keeps them."""

    record_types = frozenset({"Invoice", "CreditNote"})
    tables = (CUSTOMER, INVOICE, CREDIT_NOTE)
    reads = {"list_invoices": Op(ListInvoices, list_invoices)}
    writes = {"issue_credit_note": Op(IssueCreditNote, issue_credit_note)}
    undos = {"issue_credit_note": mark_created({"status": "void"})}

    @staticmethod
    def populate(tx: Tx, reference: date) -> None:
        for name, *_ in ACCOUNTS:
            tx.create(CUSTOMER, name, {"name": name})
        for invoice, account, amount, status, days in INVOICES:
            due = (reference + timedelta(days=days)).isoformat()
            tx.create(INVOICE, invoice, {"account": account, "amount": amount, "status": status, "due": due})


# The invoices of shared/demo-workspace.md; due dates are days from the reference day.
INVOICES = [
    ("INV-2041", "Orchid Pharma", 24_000, "overdue", -25),
    ("INV-2042", "Brightwater Dental", 12_000, "sent", 5),
    ("INV-2043", "Juniper Schools", 9_500, "paid", -20),
    ("INV-2044", "Cobalt Retail Group", 55_000, "overdue", -10),
]
