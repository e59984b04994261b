"""Salesforce: the demo CRM's operations on Opportunities, Accounts, Contacts and Tasks
(``simple-salesforce``, REST API).

The kind ``salesforce`` reads deals (``find_deals``, ``get``) and writes them
(``update_deal``, ``close_deal``, ``reassign_account``, ``log_note``) with the
demo CRM's argument names, and adds ``create_task``. Record ids are Salesforce
ids (``006...`` an Opportunity, ``001...`` an Account, ``003...`` a Contact).

Every write carries ``stable_id(key)`` in a custom External ID field
(``Sayso_Key__c`` by default). A note or a task is *upserted* on that field,
so Salesforce itself refuses to make a second one for the same key; an update
sets the field in the same PATCH as its values, so the change and its key land
together. ``lookup(key)`` is a SOQL query on that field. See
docs/connectors/salesforce.md for the fields to create and the limits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StringConstraints
from rapidfuzz import fuzz

from ..directory import Directory
from ..errors import ConfigurationError, ConnectorError, InvalidArguments, UnknownRecord, UnknownUser
from . import ConnectorRegistry, SystemContext, operations
from ._common import Settings, parse_args, require_extra, short
from .base import Change, Connector, Effect, Guarantee, Record
from .operations import CloseDeal, FindDeals, GetRecord, LogNote, Params, ReassignAccount
from .provenance import stable_id, why_text

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce as Client

__all__ = ["Salesforce", "register", "soql_literal"]

# Salesforce's standard Opportunity stages.
DEFAULT_STAGES = {
    "prospecting": "Prospecting",
    "qualification": "Qualification",
    "proposal": "Proposal/Price Quote",
    "negotiation": "Negotiation/Review",
    "closed_won": "Closed Won",
    "closed_lost": "Closed Lost",
}
OBJECTS = {"Deal": "Opportunity", "Account": "Account", "Contact": "Contact"}
_PREFIXES = {"006": "Deal", "001": "Account", "003": "Contact"}
_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
_NOISE = {"the", "a", "an"}
_NOTE_PREFIX = "Note: "


class UpdateDeal(operations.UpdateDeal):
    """The CRM's ``update_deal``; the amount is checked as Salesforce's Amount field takes it, not strictly
    (a whole float or numeric text passes)."""

    amount: Annotated[int, Field(gt=0)] | None = None


class CreateTask(Params):
    """``create_task``, which only Salesforce has: a Task for someone, on a record or on its own."""

    subject: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
    record: str | None = None
    assignee: str | None = None
    due: date | None = None
    priority: Literal["low", "normal", "high"] | None = None
    description: str | None = None


def soql_literal(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _like(word: str) -> str:
    """A SOQL LIKE pattern for a substring: ``%`` and ``_`` in the word match only themselves."""
    escaped = word.replace("\\", "\\\\").replace("'", "\\'").replace("%", "\\%").replace("_", "\\_")
    return f"'%{escaped}%'"


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def _version(stamp: Any) -> int:
    """SystemModstamp (``2026-11-25T14:00:00.000+0000``) as milliseconds: it grows on every change."""
    if not isinstance(stamp, str):
        return 0
    digits = re.sub(r"\D", "", stamp[:23])
    return int(digits) if digits else 0


class Salesforce(Connector):
    """Deals, accounts and contacts from Salesforce; notes and tasks as Tasks upserted by key."""

    guarantee = Guarantee.IDEMPOTENT
    record_types = frozenset({"Deal", "Account", "Contact"})
    _CREATES = frozenset({"log_note", "create_task"})

    def __init__(
        self,
        name: str,
        client: Client,
        directory: Directory,
        *,
        secrets: tuple[str, ...] = (),
        external_id_field: str = "Sayso_Key__c",
        stages: Mapping[str, str] | None = None,
        note_status: str = "Completed",
        task_status: str = "Not Started",
        close_reason_field: str | None = None,
    ) -> None:
        self.name = name
        self._sf = client
        self._directory = directory
        self._secrets = tuple(s for s in secrets if s)
        self.key_field = external_id_field
        self.stages = {**DEFAULT_STAGES, **(stages or {})}
        self.note_status = note_status
        self.task_status = task_status
        self.close_reason_field = close_reason_field
        self._users: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Salesforce({self.name!r}, instance={self._sf.sf_instance!r})"

    def guarantee_for(self, operation: str) -> Guarantee:
        """Notes and tasks are upserted on the key (Salesforce dedupes); an update stamps its key on the
        record it changes, so it can be looked up until a later sayso write to that record."""
        return Guarantee.IDEMPOTENT if operation in self._CREATES else Guarantee.VERIFIABLE

    # --- calls ----------------------------------------------------------------------------

    def _call(self, what: str, call: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """One simple-salesforce call; its errors become ``ConnectorError`` with Salesforce's own
        codes and messages (None for a 404 when ``missing_ok``), and never a secret."""
        from requests import RequestException
        from simple_salesforce.exceptions import SalesforceError

        try:
            return call(*args, **kwargs)
        except SalesforceError as exc:
            if exc.status == 404 and missing_ok:
                return None
            raise ConnectorError(self._scrub(f"{self.name}: Salesforce answered {exc.status} to {what}: "
                                             f"{_explain(exc.content)}")) from None
        except RequestException as exc:
            raise ConnectorError(f"{self.name}: Salesforce did not answer {what} ({type(exc).__name__})") from None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _query(self, soql: str) -> list[dict[str, Any]]:
        result = self._call("a query", self._sf.query_all, soql) or {}
        return [dict(r) for r in result.get("records") or []]

    def _sobject(self, name: str) -> Any:
        return getattr(self._sf, name)

    # --- people ---------------------------------------------------------------------------

    def _person(self, user: Any) -> str | None:
        """A directory person id for a Salesforce user (by email); else the user's email."""
        if not isinstance(user, Mapping):
            return None
        email = str(user.get("Email") or "")
        for person in self._directory:
            if email and person.email.lower() == email.lower():
                return person.id
        return email or None

    def _user_id(self, who: str) -> str:
        """The active Salesforce User of a directory person (or of an email address)."""
        if who in self._users:
            return self._users[who]
        email = who if "@" in who else self._directory.get(who).email
        if not email:
            raise InvalidArguments(f"{who} has no email in the directory, so no Salesforce user can be found")
        users = self._query(f"SELECT Id FROM User WHERE Email = {soql_literal(email)} AND IsActive = true LIMIT 2")
        if len(users) != 1:
            raise UnknownUser(f"{self.name}: {'no' if not users else 'more than one'} active Salesforce user for "
                              f"{who} ({email})")
        self._users[who] = str(users[0]["Id"])
        return self._users[who]

    # --- records --------------------------------------------------------------------------

    def _fields(self, record_type: str) -> str:
        key = f", {self.key_field}"
        if record_type == "Deal":
            reason = f", {self.close_reason_field}" if self.close_reason_field else ""
            return ("Id, Name, Amount, StageName, CloseDate, IsClosed, Description, SystemModstamp, "
                    f"Account.Name, Owner.Email{reason}{key}")
        if record_type == "Account":
            return f"Id, Name, Industry, BillingState, SystemModstamp, Owner.Email{key}"
        return "Id, Name, Title, Email, SystemModstamp, Account.Name"

    def _stage(self, name: Any) -> str | None:
        if not name:
            return None
        for ours, theirs in self.stages.items():
            if theirs.lower() == str(name).lower():
                return ours
        return str(name).lower()

    def _record(self, record_type: str, row: Mapping[str, Any]) -> Record:
        account = (row.get("Account") or {}).get("Name") if isinstance(row.get("Account"), Mapping) else None
        attrs: dict[str, Any]
        if record_type == "Deal":
            amount = row.get("Amount")
            attrs = {"name": row.get("Name"), "account": account,
                     "amount": int(amount) if isinstance(amount, int | float) else None,
                     "stage": self._stage(row.get("StageName")), "close_date": row.get("CloseDate"),
                     "owner": self._person(row.get("Owner"))}
            if self.close_reason_field:
                attrs["close_reason"] = row.get(self.close_reason_field)
        elif record_type == "Account":
            attrs = {"name": row.get("Name"), "owner": self._person(row.get("Owner")), "industry": row.get("Industry"),
                     "region": row.get("BillingState")}
        else:
            attrs = {"name": row.get("Name"), "title": row.get("Title"), "email": row.get("Email"),
                     "account": account}
        return Record(type=record_type, id=str(row["Id"]), title=str(row.get("Name") or row["Id"]),
                      attrs={k: v for k, v in attrs.items() if v is not None},
                      version=_version(row.get("SystemModstamp")), system=self.name)

    def _row(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        if not _ID.match(record_id):
            return None
        rows = self._query(f"SELECT {self._fields(record_type)} FROM {OBJECTS[record_type]} "
                           f"WHERE Id = {soql_literal(record_id)}")
        return rows[0] if rows else None

    def _typed(self, record_id: str, types: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """The record with this id among ``types`` (its id prefix says which object it is)."""
        guess = _PREFIXES.get(record_id[:3])
        for record_type in ([guess] if guess in types else []) or list(types):
            row = self._row(record_type, record_id)
            if row is not None:
                return record_type, row
        raise UnknownRecord(f"{self.name} has no {' or '.join(types)} {record_id!r}")

    def get(self, record_type: str, record_id: str) -> Record | None:
        if record_type not in OBJECTS:
            return None
        row = self._row(record_type, record_id)
        return None if row is None else self._record(record_type, row)

    def search(self, record_type: str, text: str, *, limit: int = 10) -> list[Record]:
        return self.search_visible(record_type, text, lambda record: True, limit=limit)

    def search_visible(self, record_type: str, text: str, keep: Callable[[Record], bool], *,
                       limit: int = 10) -> list[Record]:
        """An id, or an exact name (case aside), scores 100 alone; names (and, for a deal, its
        account's name) holding every word as a word prefix score 90; then close spellings among
        names holding every word (WRatio >= 85). Records ``keep`` refuses are left out first."""
        needle = text.strip()
        if record_type not in OBJECTS or not needle or limit < 1:
            return []
        if _ID.match(needle):
            found = self.get(record_type, needle)
            if found is not None and keep(found):
                return [found.model_copy(update={"score": 100.0})]
        noise = _NOISE | {record_type.lower(), f"{record_type.lower()}s"}
        tokens = [w for w in _words(needle) if w not in noise]
        if not tokens:
            return []
        names = ["Name", "Account.Name"] if record_type == "Deal" else ["Name"]
        where = " AND ".join("(" + " OR ".join(f"{n} LIKE {_like(t)}" for n in names) + ")" for t in tokens)
        rows = self._query(f"SELECT {self._fields(record_type)} FROM {OBJECTS[record_type]} WHERE {where} "
                           f"ORDER BY Name LIMIT 50")
        records = [r for r in (self._record(record_type, row) for row in rows) if keep(r)]
        exact = [r for r in records if r.title.lower() == needle.lower()]
        if exact:
            return [r.model_copy(update={"score": 100.0}) for r in exact[:limit]]
        prefixed = [r for r in records
                    if all(any(w.startswith(t) for w in _words(f"{r.title} {r.attrs.get('account', '')}"))
                           for t in tokens)]
        if prefixed:
            return [r.model_copy(update={"score": 90.0}) for r in prefixed[:limit]]
        scored = [(fuzz.WRatio(needle.lower(), r.title.lower()), r) for r in records]
        close = sorted(((s, r) for s, r in scored if s >= 85), key=lambda pair: -pair[0])
        return [r.model_copy(update={"score": round(s, 1)}) for s, r in close[:limit]]

    def read(self, operation: str, args: dict[str, Any]) -> list[Record]:
        if operation == "find_deals":
            return self._find_deals(parse_args(FindDeals, args, f"{self.name}.{operation}"))
        if operation == "get":
            p = parse_args(GetRecord, args, f"{self.name}.{operation}")
            record_type, row = self._typed(p.record, ("Deal", "Account", "Contact"))
            record = self._record(record_type, row)
            if record_type == "Account":
                contacts = self._query(f"SELECT Name FROM Contact WHERE AccountId = {soql_literal(record.id)} "
                                       "ORDER BY Name")
                record.attrs["contacts"] = [c.get("Name") for c in contacts]
            return [record]
        raise InvalidArguments(f"{self.name} has no read operation {operation!r} (it has: find_deals, get)")

    def _find_deals(self, p: FindDeals) -> list[Record]:
        where: list[str] = []
        if p.owner is not None:
            where.append(f"Owner.Email = {soql_literal(self._directory.get(p.owner).email)}")
        if p.stage is not None:
            where.append(f"StageName = {soql_literal(self.stages[p.stage])}")
        if p.account is not None:
            where.append(f"Account.Name = {soql_literal(p.account)}")
        if p.closing_after is not None:
            where.append(f"CloseDate >= {p.closing_after.isoformat()}")
        if p.closing_before is not None:
            where.append(f"CloseDate <= {p.closing_before.isoformat()}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(f"SELECT {self._fields('Deal')} FROM Opportunity{clause} ORDER BY CloseDate, Id LIMIT 200")
        return [self._record("Deal", row) for row in rows]

    # --- writes ---------------------------------------------------------------------------

    def preview(self, operation: str, args: dict[str, Any]) -> list[Change]:
        if operation in ("update_deal", "close_deal", "reassign_account"):
            plan = self._plan(operation, args)
            return [plan.change] if plan.change.after else []
        if operation == "log_note":
            note = parse_args(LogNote, args, f"{self.name}.{operation}")
            return [Change(record_type="Note", record_id="(new)", title=note.text, after=note.model_dump())]
        if operation == "create_task":
            task = parse_args(CreateTask, args, f"{self.name}.{operation}")
            return [Change(record_type="Task", record_id="(new)", title=task.subject,
                           after=task.model_dump(mode="json", exclude_none=True))]
        raise InvalidArguments(f"{self.name} has no write operation {operation!r}")

    def execute(
        self, operation: str, args: dict[str, Any], *, key: str, origin: dict[str, Any] | None = None
    ) -> Effect:
        if operation in ("update_deal", "close_deal", "reassign_account"):
            return self._apply(self._plan(operation, args), key, operation)
        if operation == "log_note":
            p = parse_args(LogNote, args, f"{self.name}.{operation}")
            return self._note(p, key, origin)
        if operation == "create_task":
            return self._task(parse_args(CreateTask, args, f"{self.name}.{operation}"), key, origin)
        known = "close_deal, create_task, log_note, reassign_account, update_deal"
        raise InvalidArguments(f"{self.name} has no write operation {operation!r} (it has: {known})")

    def _plan(self, operation: str, args: Mapping[str, Any]) -> _Plan:
        """What an update would change, as sayso values (``change``) and Salesforce fields (``fields``)."""
        if operation == "reassign_account":
            r = parse_args(ReassignAccount, args, f"{self.name}.{operation}")
            self._directory.get(r.new_owner)
            row = self._row("Account", r.account)
            if row is None:
                raise UnknownRecord(f"{self.name} has no Account {r.account!r}")
            record = self._record("Account", row)
            wanted: dict[str, Any] = {"owner": r.new_owner}
            return self._planned("Account", record, row, wanted)
        if operation == "update_deal":
            u = parse_args(UpdateDeal, args, f"{self.name}.{operation}")
            wanted = u.model_dump(mode="json", include={"stage", "amount", "close_date"}, exclude_none=True)
            if not wanted:
                raise InvalidArguments("update_deal: give a stage, an amount or a close date")
            row = self._deal(u.deal)
            return self._planned("Deal", self._record("Deal", row), row, wanted)
        c = parse_args(CloseDeal, args, f"{self.name}.{operation}")
        row = self._deal(c.deal)
        record = self._record("Deal", row)
        wanted = {"stage": f"closed_{c.outcome}"}
        if c.reason:
            wanted["close_reason"] = c.reason
        return self._planned("Deal", record, row, wanted, context=("amount",))

    def _deal(self, deal: str) -> dict[str, Any]:
        row = self._row("Deal", deal)
        if row is None:
            raise UnknownRecord(f"{self.name} has no Deal {deal!r}")
        return row

    def _planned(self, record_type: str, record: Record, row: Mapping[str, Any], wanted: Mapping[str, Any],
                 context: tuple[str, ...] = ()) -> _Plan:
        if record_type == "Deal" and row.get("IsClosed") and str(wanted.get("stage", "")).startswith("closed_"):
            raise InvalidArguments(f"{record.id} is already {record.attrs.get('stage')}")
        current = {**record.attrs, "description": row.get("Description")}
        wanted = dict(wanted)
        if "close_reason" in wanted and not self.close_reason_field:  # kept in the deal's description instead
            reason = wanted.pop("close_reason")
            wanted["description"] = f"{row.get('Description') or ''}\n\nClose reason: {reason}".strip()
        changed = {k: v for k, v in wanted.items() if current.get(k) != v}
        shown = {k: record.attrs.get(k) for k in context if k in record.attrs}
        change = Change(record_type=record_type, record_id=record.id, title=record.title,
                        before={**{k: current.get(k) for k in changed}, **shown}, after={**changed, **shown},
                        version=record.version)
        names = {"stage": "StageName", "amount": "Amount", "close_date": "CloseDate", "owner": "OwnerId",
                 "close_reason": self.close_reason_field or "", "description": "Description"}
        fields: dict[str, Any] = {}
        for k, v in changed.items():
            if k == "stage":
                v = self.stages[str(v)]
            elif k == "owner":
                v = self._user_id(str(v))
            fields[names[k]] = v
        return _Plan(OBJECTS[record_type], record.id, change, fields, str(row.get(self.key_field) or ""))

    def _apply(self, plan: _Plan, key: str, operation: str, *, undoes: str | None = None) -> Effect:
        """One PATCH sets the values and the key together; a record already carrying the key was
        changed by this very write, which is returned, not repeated."""
        stamp = stable_id(key)
        if plan.stamped == stamp:
            done = self._stamped(plan.sobject, plan.id, key)
            if done is not None:
                return done.model_copy(update={"operation": operation})
        self._call(f"PATCH {plan.sobject}", self._sobject(plan.sobject).update, plan.id,
                   {**plan.fields, self.key_field: stamp})
        result: dict[str, Any] = {"id": plan.id, **({"undoes": undoes} if undoes else {})}
        if not plan.fields:
            return Effect(key=key, operation=operation, result=result,
                          summary=f"{plan.id} unchanged: it already has those values")
        return Effect(key=key, operation=operation, changes=[plan.change], result=result,
                      summary=("undo: " if undoes else "") + _describe(plan.change))

    def _task_fields(self) -> str:
        return f"Id, Subject, Description, Status, ActivityDate, Priority, WhatId, WhoId, Owner.Email, {self.key_field}"

    def _note(self, p: LogNote, key: str, origin: Mapping[str, Any] | None) -> Effect:
        found = self._task_effect(key)
        if found is not None:
            return found
        record_type, _ = self._typed(p.record, ("Deal", "Account", "Contact"))
        what = "WhoId" if record_type == "Contact" else "WhatId"
        data = {"Subject": _NOTE_PREFIX + short(p.text, 240), "Status": self.note_status, what: p.record,
                "Description": "\n\n".join(part for part in (p.text, why_text(origin)) if part)}
        task_id = self._upsert(key, data)
        return self._note_effect(key, task_id, p.record, p.text, (origin or {}).get("actor"))

    def _note_effect(self, key: str, task_id: str, record: str, text: str, author: Any) -> Effect:
        return Effect(key=key, operation="log_note", result={"id": task_id},
                      summary=f"noted on {record}: {short(text)!r}",
                      changes=[Change(record_type="Note", record_id=task_id, title=text,
                                      after={k: v for k, v in (("record", record), ("text", text),
                                                               ("author", author)) if v is not None})])

    def _task(self, p: CreateTask, key: str, origin: Mapping[str, Any] | None) -> Effect:
        found = self._task_effect(key)
        if found is not None:
            return found
        data: dict[str, Any] = {"Subject": p.subject, "Status": self.task_status,
                                "Description": "\n\n".join(x for x in (p.description, why_text(origin)) if x)}
        if p.record:
            record_type, _ = self._typed(p.record, ("Deal", "Account", "Contact"))
            data["WhoId" if record_type == "Contact" else "WhatId"] = p.record
        if p.assignee:
            data["OwnerId"] = self._user_id(p.assignee)
        if p.due:
            data["ActivityDate"] = p.due.isoformat()
        if p.priority:
            data["Priority"] = p.priority.title()
        task_id = self._upsert(key, data)
        after = p.model_dump(mode="json", exclude_none=True, exclude={"description"})
        for_whom = f" for {p.assignee}" if p.assignee else ""
        return Effect(key=key, operation="create_task", result={"id": task_id},
                      summary=f"created task {p.subject!r}{for_whom}",
                      changes=[Change(record_type="Task", record_id=task_id, title=p.subject, after=after)])

    def _upsert(self, key: str, data: Mapping[str, Any]) -> str:
        """Create the Task under the key's external id; a second upsert of the same key finds the first."""
        stamp = stable_id(key)
        response = self._call("PATCH Task (upsert)", self._sobject("Task").upsert, f"{self.key_field}/{stamp}",
                              dict(data), raw_response=True)
        body = response.json() if response is not None and response.content else {}
        if isinstance(body, Mapping) and body.get("id"):
            return str(body["id"])
        rows = self._query(f"SELECT Id FROM Task WHERE {self.key_field} = {soql_literal(stamp)}")
        if not rows:
            raise ConnectorError(f"{self.name}: the upserted Task of key {stamp} cannot be found")
        return str(rows[0]["Id"])

    def _task_effect(self, key: str) -> Effect | None:
        rows = self._query(f"SELECT {self._task_fields()} FROM Task WHERE {self.key_field} = "
                           f"{soql_literal(stable_id(key))}")
        if not rows:
            return None
        row = rows[0]
        subject = str(row.get("Subject") or "")
        record = str(row.get("WhatId") or row.get("WhoId") or "")
        if subject.startswith(_NOTE_PREFIX) and row.get("Status") == self.note_status:
            text = str(row.get("Description") or "").split("\n\n")[0]
            return self._note_effect(key, str(row["Id"]), record, text, None)  # who asked is in the text
        after = {"subject": subject, "record": record or None, "assignee": self._person(row.get("Owner")),
                 "due": row.get("ActivityDate")}
        return Effect(key=key, operation="create_task", result={"id": str(row["Id"])},
                      summary=f"created task {subject!r}",
                      changes=[Change(record_type="Task", record_id=str(row["Id"]), title=subject,
                                      after={k: v for k, v in after.items() if v is not None})])

    def _stamped(self, sobject: str, record_id: str | None, key: str) -> Effect | None:
        """The update whose key a record carries, read back from the record itself. The values it
        had before are not kept in Salesforce, so such an effect cannot be undone."""
        record_type = "Deal" if sobject == "Opportunity" else "Account"
        where = f"{self.key_field} = {soql_literal(stable_id(key))}"
        if record_id:
            where += f" AND Id = {soql_literal(record_id)}"
        rows = self._query(f"SELECT {self._fields(record_type)} FROM {sobject} WHERE {where}")
        if not rows:
            return None
        row = rows[0]
        record = self._record(record_type, row)
        shown: tuple[str, ...] = ("owner",)
        operation = "reassign_account"
        if record_type == "Deal":
            operation = "close_deal" if row.get("IsClosed") else "update_deal"
            shown = ("stage", "amount", "close_date")
        after = {k: record.attrs.get(k) for k in shown}
        return Effect(key=key, operation=operation, result={"id": record.id, "recovered": True},
                      summary=f"{record.id} " + ", ".join(f"{k} {v}" for k, v in after.items())
                      + " (found by its key; the earlier values were not kept)",
                      changes=[Change(record_type=record_type, record_id=record.id, title=record.title, before={},
                                      after=after, version=record.version)])

    def lookup(self, key: str) -> Effect | None:
        """A SOQL query on the key field: a Task (note, task), else an Opportunity or an Account whose
        last sayso write was this key."""
        return self._task_effect(key) or self._stamped("Opportunity", None, key) or self._stamped("Account", None, key)

    def compensate(self, effect: Effect, *, key: str) -> Effect:
        """Undo: a note or task is deleted; an update gets its earlier values back, unless the record
        has changed since (and not for an update found after a crash, whose earlier values are unknown)."""
        operation = f"undo:{effect.operation}"
        record_id = str(effect.result.get("id") or "")
        if effect.operation in self._CREATES:
            self._call("DELETE Task", self._sobject("Task").delete, record_id, missing_ok=True)
            before = effect.changes[0].after if effect.changes else {}
            return Effect(key=key, operation=operation, result={"id": record_id, "undoes": effect.key},
                          summary=f"undo: deleted {effect.changes[0].record_type.lower() if effect.changes else 'task'}"
                                  f" {record_id}",
                          changes=[Change(record_type=effect.changes[0].record_type if effect.changes else "Task",
                                          record_id=record_id, before=before)])
        if effect.operation not in ("update_deal", "close_deal", "reassign_account"):
            raise NotImplementedError(f"{self.name} cannot undo {effect.operation!r}")
        if not effect.changes:
            return Effect(key=key, operation=operation, result={"id": record_id, "undoes": effect.key},
                          summary="undo: nothing to change")
        change = effect.changes[0]
        if not change.before and effect.result.get("recovered"):
            raise InvalidArguments(f"{record_id}: this change was found after a restart and its earlier values "
                                   "were not kept; not undone")
        record_type = change.record_type
        row = self._row(record_type, record_id)
        if row is None:
            raise UnknownRecord(f"{self.name} has no {record_type} {record_id!r}")
        record = self._record(record_type, row)
        current = {**record.attrs, "description": row.get("Description")}
        if row.get(self.key_field) != stable_id(key):  # not undone yet: only what is still as we left it
            moved = [f"{k} is now {current.get(k)}" for k, v in (change.after or {}).items() if current.get(k) != v]
            if moved:
                raise InvalidArguments(f"{record_id} changed since ({', '.join(moved)}); not undone")
        before = change.before or {}
        wanted = {k: before.get(k) for k, v in (change.after or {}).items() if before.get(k) != v}
        plan = self._planned(record_type, record, row, wanted)
        return self._apply(plan, key, operation, undoes=effect.key)

    def close(self) -> None:
        self._sf.session.close()


class _Plan:
    """An update worked out: the change in sayso's terms and the fields to PATCH."""

    def __init__(self, sobject: str, record_id: str, change: Change, fields: dict[str, Any], stamped: str) -> None:
        self.sobject, self.id, self.change, self.fields, self.stamped = sobject, record_id, change, fields, stamped


def _describe(change: Change) -> str:
    """A change in words: ``Brightwater Expansion (006...): stage proposal -> negotiation, amount 48,000``."""

    def show(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return "none" if value is None else short(str(value).replace("\n", " "), 40)

    before = change.before or {}
    parts = [f"{k} {show(v)}" if k in before and before[k] == v else f"{k} {show(before.get(k))} -> {show(v)}"
             for k, v in (change.after or {}).items()]
    return f"{change.title} ({change.record_id}): {', '.join(parts)}"


def _explain(content: Any) -> str:
    """Salesforce's error body (``[{"message": ..., "errorCode": ..., "fields": [...]}]``) in one line."""
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, Mapping):
                fields = f" ({', '.join(map(str, item.get('fields') or []))})" if item.get("fields") else ""
                parts.append(f"{item.get('errorCode', 'ERROR')}: {item.get('message', '')}{fields}")
        if parts:
            return "; ".join(parts)
    if isinstance(content, Mapping):  # the OAuth endpoints answer {"error": ..., "error_description": ...}
        return f"{content.get('error', 'error')}: {content.get('error_description', '')}"
    return str(content)[:300] or "no details"


def _create(name: str, settings: Mapping[str, Any], context: SystemContext) -> Salesforce:
    require_extra(name, "salesforce", "simple-salesforce", "simple_salesforce", "requests")
    import requests
    from simple_salesforce.api import Salesforce as Client
    from simple_salesforce.exceptions import SalesforceError

    timeout = float(settings.get("timeout", 30))

    class Session(requests.Session):
        """A timeout on every call (simple-salesforce sets none), and the session's ``verify`` on every
        call: requests would otherwise let ``REQUESTS_CA_BUNDLE`` override it."""

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            kwargs.setdefault("timeout", timeout)
            kwargs.setdefault("verify", self.verify)
            return super().request(method, url, *args, **kwargs)

    session = Session()
    if settings.get("ca_bundle"):
        session.verify = str(context.root / str(settings["ca_bundle"]))
    common: dict[str, Any] = {"version": str(settings.get("api_version", "59.0")), "session": session}
    secrets: list[str] = []
    if settings.get("session_id_secret"):
        if not settings.get("instance_url"):
            raise ConfigurationError(f"system {name!r} (salesforce): session_id_secret needs instance_url")
        secrets.append(context.secret(str(settings["session_id_secret"])))
        auth: dict[str, Any] = {"session_id": secrets[-1], "instance_url": str(settings["instance_url"])}
    elif settings.get("password_secret"):
        if not settings.get("username"):
            raise ConfigurationError(f"system {name!r} (salesforce): password_secret needs username")
        secrets += [context.secret(str(settings["password_secret"])),
                    context.secret(str(settings.get("security_token_secret", "")))
                    if settings.get("security_token_secret") else ""]
        auth = {"username": str(settings["username"]), "password": secrets[0], "security_token": secrets[1],
                "domain": str(settings.get("domain", "login"))}
    elif settings.get("consumer_key_secret"):
        if not settings.get("domain") or not settings.get("consumer_secret_secret"):
            raise ConfigurationError(f"system {name!r} (salesforce): OAuth client credentials need consumer_key_secret,"
                                     " consumer_secret_secret and domain (your My Domain, e.g. lumenlabs.my)")
        secrets += [context.secret(str(settings["consumer_key_secret"])),
                    context.secret(str(settings["consumer_secret_secret"]))]
        auth = {"consumer_key": secrets[0], "consumer_secret": secrets[1], "domain": str(settings["domain"])}
    else:
        raise ConfigurationError(f"system {name!r} (salesforce) needs session_id_secret (with instance_url), "
                                 "username and password_secret, or consumer_key_secret and consumer_secret_secret")
    try:
        client = Client(**auth, **common)
    except SalesforceError as exc:  # a login that failed (password or client credentials)
        message = f"system {name!r} (salesforce) could not sign in: {_explain(exc.content)}"
        for secret in secrets:
            message = message.replace(secret, "[redacted]") if secret else message
        raise ConnectorError(message) from None
    except requests.RequestException as exc:
        raise ConnectorError(f"system {name!r} (salesforce): the sign-in did not answer ({type(exc).__name__})") \
            from None
    return Salesforce(
        name, client, context.directory, secrets=tuple(secrets),
        external_id_field=str(settings.get("external_id_field", "Sayso_Key__c")),
        stages=Settings(name, settings, kind="salesforce").names("stages"),
        note_status=str(settings.get("note_status", "Completed")),
        task_status=str(settings.get("task_status", "Not Started")),
        close_reason_field=str(settings["close_reason_field"]) if settings.get("close_reason_field") else None,
    )


def register(registry: ConnectorRegistry) -> None:
    """Add the kind ``salesforce`` (REST API through simple-salesforce)."""
    registry.add("salesforce", _create)
