"""The demo CRM: accounts and their contacts, deals, and notes on any of them."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from ...errors import InvalidArguments
from .._common import short
from ..base import Record
from ..operations import CloseDeal, FindDeals, GetRecord, LogNote, Params, ReassignAccount, Text, UpdateDeal
from ._store import (
    INTEGER,
    OPTIONAL,
    TEXT,
    DemoSystem,
    Op,
    Outcome,
    Table,
    Tx,
    describe,
    iso,
    remove_created,
    restore_all,
    updated,
)

DEAL = Table(
    "Deal", "deals",
    {
        "name": TEXT, "account": TEXT, "amount": INTEGER, "stage": TEXT, "close_date": TEXT, "owner": TEXT,
        "close_reason": OPTIONAL,
    },
    search=("account",),  # "the Kestrel Aerospace deal" finds the deal by its account too
)
ACCOUNT = Table("Account", "accounts", {"name": TEXT, "owner": TEXT, "industry": TEXT, "region": TEXT})
CONTACT = Table("Contact", "contacts", {"name": TEXT, "title": TEXT, "email": TEXT, "account": TEXT})
NOTE = Table("Note", "notes", {"record": TEXT, "text": TEXT, "author": OPTIONAL}, title="text")
_RECORDS = (DEAL, ACCOUNT, CONTACT)


class DeleteRecord(Params):
    record: Text


def find_deals(tx: Tx, p: FindDeals) -> list[Record]:
    """Deals matching every filter given, soonest close first; close dates are inclusive."""
    where: list[str] = []
    params: list[Any] = []
    for test, value in (
        ("owner = ?", p.owner),
        ("stage = ?", p.stage),
        ("account = ? COLLATE NOCASE", p.account),
        ("close_date >= ?", iso(p.closing_after)),
        ("close_date <= ?", iso(p.closing_before)),
    ):
        if value is not None:
            where.append(test)
            params.append(value)
    return tx.records(DEAL, " AND ".join(where) or "1", params, order="close_date, id")


def get_record(tx: Tx, p: GetRecord) -> list[Record]:
    """One deal, account or contact; an account lists its contacts' names."""
    table, row = tx.find_any(_RECORDS, p.record)
    record = table.record(row, tx.system)
    if table is ACCOUNT:
        record.attrs["contacts"] = [c.title for c in tx.records(CONTACT, "account = ?", [record.id])]
    return [record]


def update_deal(tx: Tx, p: UpdateDeal) -> Outcome:
    values = p.model_dump(mode="json", include={"stage", "amount", "close_date"}, exclude_none=True)
    if not values:
        raise InvalidArguments("update_deal: give a stage, an amount or a close date")
    return updated(tx.update(DEAL, p.deal, values), p.deal)


def close_deal(tx: Tx, p: CloseDeal) -> Outcome:
    """Close a deal; its amount rides along unchanged in the change, since closing books that amount."""
    row = tx.row(DEAL, p.deal)
    if row["stage"] in ("closed_won", "closed_lost"):
        raise InvalidArguments(f"{p.deal} is already {row['stage']}")
    values = {"stage": f"closed_{p.outcome}"}
    if p.reason:
        values["close_reason"] = p.reason
    return updated(tx.update(DEAL, p.deal, values, context=("amount",)), p.deal)


def log_note(tx: Tx, p: LogNote) -> Outcome:
    tx.find_any(_RECORDS, p.record)
    note = f"N-{tx.next_number('note')}"
    change = tx.create(NOTE, note, {"record": p.record, "text": p.text, "author": tx.actor})
    return Outcome([change], f"noted on {p.record}: {short(p.text)!r}", {"id": note})


def reassign_account(tx: Tx, p: ReassignAccount) -> Outcome:
    tx.person(p.new_owner)
    return updated(tx.update(ACCOUNT, p.account, {"owner": p.new_owner}), p.account)


def delete_record(tx: Tx, p: DeleteRecord) -> Outcome:
    """Delete a deal or a contact, or an account with its contacts once it has no deals."""
    table, _ = tx.find_any(_RECORDS, p.record)
    contacts: list[str] = []
    if table is ACCOUNT:
        deals = [d.id for d in tx.records(DEAL, "account = ?", [p.record])]
        if deals:
            raise InvalidArguments(f"{p.record} still has deals ({', '.join(deals)}); move or delete them")
        contacts = [c.id for c in tx.records(CONTACT, "account = ?", [p.record])]
    changes = [tx.delete(table, p.record), *(tx.delete(CONTACT, c) for c in contacts)]
    return Outcome(changes, "; ".join(map(describe, changes)), {"id": p.record})


class Crm(DemoSystem):
    """Deals, accounts and contacts, as a CRM such as Salesforce keeps them."""

    record_types = frozenset({"Deal", "Account", "Contact"})
    tables = (DEAL, ACCOUNT, CONTACT, NOTE)
    reads = {"find_deals": Op(FindDeals, find_deals), "get": Op(GetRecord, get_record)}
    writes = {
        "update_deal": Op(UpdateDeal, update_deal),
        "close_deal": Op(CloseDeal, close_deal),
        "log_note": Op(LogNote, log_note),
        "reassign_account": Op(ReassignAccount, reassign_account),
        "delete": Op(DeleteRecord, delete_record),
    }
    undos = {
        "update_deal": restore_all,
        "close_deal": restore_all,
        "reassign_account": restore_all,
        "log_note": remove_created,
    }

    @staticmethod
    def populate(tx: Tx, reference: date) -> None:
        for name, owner, industry, region in ACCOUNTS:
            tx.create(ACCOUNT, name, {"name": name, "owner": owner, "industry": industry, "region": region})
        for number, (account, name, title) in enumerate(CONTACTS, start=201):
            email = name.lower().replace(" ", ".") + "@" + re.sub(r"[^a-z]", "", account.lower()) + ".example"
            contact = {"name": name, "title": title, "email": email, "account": account}
            tx.create(CONTACT, f"C-{number}", contact)
        for deal, name, account, amount, stage, days, owner in DEALS:
            values = {
                "name": name, "account": account, "amount": amount, "stage": stage,
                "close_date": (reference + timedelta(days=days)).isoformat(), "owner": owner,
            }
            tx.create(DEAL, deal, values)


# The Lumen Labs data of shared/demo-workspace.md; close dates are days from the reference day.
ACCOUNTS = [
    ("Brightwater Dental", "alice", "healthcare", "east"),
    ("Kestrel Aerospace", "alice", "aerospace", "east"),
    ("Kestrel Analytics", "devi", "software", "west"),
    ("Orchid Pharma", "devi", "pharma", "west"),
    ("Tallgrass Energy", "devi", "energy", "west"),
    ("Meridian Credit Union", "carol", "finance", "east"),
    ("Cobalt Retail Group", "wes", "retail", "west"),
    ("Juniper Schools", "alice", "education", "east"),
    ("Harbor & Finch", "devi", "legal", "west"),
]
CONTACTS = [  # numbered C-201, C-202, ... in this order
    ("Brightwater Dental", "Priya Shah", "CTO"),
    ("Brightwater Dental", "Marcus Lee", "Practice Operations Director"),
    ("Kestrel Aerospace", "Tom Becker", "VP Engineering"),
    ("Kestrel Aerospace", "Anna Novak", "Head of IT Security"),
    ("Kestrel Analytics", "Jonas Weber", "Head of Data"),
    ("Orchid Pharma", "Lena Ortiz", "Procurement"),
    ("Orchid Pharma", "Raj Patel", "IT Director"),
    ("Tallgrass Energy", "Emily Carter", "COO"),
    ("Meridian Credit Union", "David Kim", "CIO"),
    ("Cobalt Retail Group", "Sofia Rossi", "VP Store Operations"),
    ("Cobalt Retail Group", "Ben Adler", "Procurement Manager"),
    ("Juniper Schools", "Grace Nolan", "Director of Technology"),
    ("Harbor & Finch", "Oliver Finch", "Managing Partner"),
]
DEALS = [
    ("D-101", "Brightwater Expansion", "Brightwater Dental", 48_000, "proposal", 20, "alice"),
    ("D-102", "Kestrel Aerospace Platform", "Kestrel Aerospace", 240_000, "negotiation", 36, "alice"),
    ("D-103", "Kestrel Analytics Pilot", "Kestrel Analytics", 18_000, "qualification", 56, "devi"),
    ("D-104", "Orchid Renewal", "Orchid Pharma", 96_000, "negotiation", 10, "devi"),
    ("D-105", "Tallgrass Field Ops", "Tallgrass Energy", 132_000, "prospecting", 96, "devi"),
    ("D-106", "Meridian Core Add-on", "Meridian Credit Union", 75_000, "proposal", 46, "carol"),
    ("D-107", "Cobalt POS Rollout", "Cobalt Retail Group", 310_000, "qualification", 95, "wes"),
    ("D-108", "Juniper District Pilot", "Juniper Schools", 9_500, "closed_won", -26, "alice"),
]
