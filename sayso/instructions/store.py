"""Instructions and their firings in the state database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, insert, not_, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import RequestError
from ..store import Store
from ..store.schema import firings, instructions

__all__ = ["Instruction", "InstructionBook", "UnknownInstruction"]

Kind = Literal["at", "every", "watch", "after"]
ACTIVE = "active"


class UnknownInstruction(RequestError):
    """No instruction with that id belongs to the person (another person's looks the same, on purpose)."""

    code = "instruction_unknown"
    http_status = 404


class Instruction(BaseModel):
    id: str
    owner: str
    conversation: str | None = None
    kind: Kind
    status: str = ACTIVE  # active | done | cancelled | suspended | expired
    words: str
    summary: str
    trigger: dict[str, Any] = Field(default_factory=dict)
    action: str | None = None  # None: a message to the owner, where they live
    args: dict[str, Any] = Field(default_factory=dict)
    next_due: str | None = None
    created_at: str
    updated_at: str
    fired: int = 0
    note: str | None = None

    def row(self) -> dict[str, Any]:
        return self.model_dump()

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "summary": self.summary,
                "words": self.words, "next_due": self.next_due, "fired": self.fired, "note": self.note}


_UTC = "+00:00"


def utc_text(when: str | None) -> str | None:
    """An ISO time as stored in ``next_due``: in UTC, ``+00:00`` (a time without an offset is UTC)."""
    if when is None:
        return None
    moment = datetime.fromisoformat(when)
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).isoformat()


def new_id() -> str:
    return f"in_{uuid.uuid4().hex[:12]}"


class InstructionBook:
    """Reads and writes instructions; every change is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, item: Instruction) -> None:
        with self.store.write() as conn:
            conn.execute(insert(instructions).values(**{**item.row(), "next_due": utc_text(item.next_due)}))

    def get(self, instruction_id: str, owner: str | None = None) -> Instruction:
        with self.store.read() as conn:
            row = conn.execute(select(instructions).where(instructions.c.id == instruction_id)).mappings().first()
        if row is None or (owner is not None and row["owner"] != owner):
            raise UnknownInstruction(f"no instruction {instruction_id!r} of yours; `sayso instructions list` "
                                     "shows them")
        return Instruction.model_validate(dict(row))

    def of(self, owner: str | None = None, *, status: str | None = None) -> list[Instruction]:
        query = select(instructions).order_by(instructions.c.created_at, instructions.c.id)
        if owner is not None:
            query = query.where(instructions.c.owner == owner)
        if status is not None:
            query = query.where(instructions.c.status == status)
        with self.store.read() as conn:
            return [Instruction.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def due(self, until: datetime) -> list[Instruction]:
        """Active instructions due at or before ``until`` (follow-ups are always looked at). The database
        filters: ``next_due`` is stored in UTC in one format, so text order is time order. A time written
        with another offset (before this rule) is filtered here, and stored in UTC once it next moves."""
        due_by = or_(instructions.c.next_due.is_(None), instructions.c.next_due <= utc_text(until.isoformat()),
                     not_(instructions.c.next_due.like(f"%{_UTC}")))
        query = select(instructions).where(and_(instructions.c.status == ACTIVE, due_by)).order_by(
            instructions.c.next_due, instructions.c.id)
        with self.store.read() as conn:
            rows = [Instruction.model_validate(dict(r)) for r in conn.execute(query).mappings()]
        return [r for r in rows if r.next_due is None or datetime.fromisoformat(r.next_due) <= until]

    def cancel(self, instruction_id: str, owner: str, at: datetime) -> Instruction:
        """Cancel one of ``owner``'s active instructions; it will not fire again."""
        item = self.get(instruction_id, owner=owner)
        if item.status != ACTIVE:
            raise RequestError(f"{item.id} is already {item.status}")
        return self.update(item, status="cancelled", next_due=None, updated_at=at.isoformat())

    def update(self, item: Instruction, **values: Any) -> Instruction:
        if "next_due" in values:
            values["next_due"] = utc_text(values["next_due"])
        with self.store.write() as conn:
            conn.execute(update(instructions).where(instructions.c.id == item.id).values(**values))
        return item.model_copy(update=values)

    # --- firings: one row per (instruction, scheduled time), so each acts once -------------------------------

    def claim(self, key: str, item: Instruction, scheduled: str, started: str, turn: str, late: bool,
              instruction_values: dict[str, Any], lease: dict[str, Any]) -> bool:
        """Record a firing as running under ``lease`` (``{"owner", "until"}``, kept in its result until it
        finishes) and move the instruction on, in one transaction; False if this firing was already claimed
        (it ran, or is running)."""
        try:
            with self.store.write() as conn:
                conn.execute(insert(firings).values(key=key, instruction=item.id, scheduled_for=scheduled,
                                                    started_at=started, status="running", late=int(late),
                                                    turn=turn, result=lease))
                if "next_due" in instruction_values:
                    instruction_values = {**instruction_values,
                                          "next_due": utc_text(instruction_values["next_due"])}
                if instruction_values:
                    conn.execute(update(instructions).where(instructions.c.id == item.id)
                                 .values(**instruction_values))
        except IntegrityError:
            return False
        return True

    def take_over(self, key: str, lease: dict[str, Any], free: Callable[[str | None, float | None], bool]) -> bool:
        """Take a running firing's lease when ``free`` says its holder's is free (a crashed process's); False
        when a live process holds it, or it finished meanwhile. The row is locked while its lease is read, so
        of several processes looking at once one takes it."""
        with self.store.write() as conn:
            row = conn.execute(select(firings.c.status, firings.c.result).where(firings.c.key == key)
                               .with_for_update()).first()
            held = row.result if row is not None and isinstance(row.result, dict) else {}
            if row is None or row.status != "running" or not free(held.get("owner"), held.get("until")):
                return False
            conn.execute(update(firings).where(firings.c.key == key).values(result=lease))
        return True

    def finish(self, key: str, status: str, result: dict[str, Any]) -> None:
        with self.store.write() as conn:
            conn.execute(update(firings).where(firings.c.key == key).values(status=status, result=result))

    def running(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return [dict(r) for r in conn.execute(select(firings).where(firings.c.status == "running")).mappings()]

    def firings_of(self, instruction_id: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return [dict(r) for r in conn.execute(select(firings).where(firings.c.instruction == instruction_id)
                                                  .order_by(firings.c.scheduled_for)).mappings()]

