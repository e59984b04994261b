"""Confirmations: stored, single-use approvals of one exact plan.

A confirmation is bound to the person who may give it, the plan's hash, the
policy set's hash and the versions of the records the plan will change, and
it expires. Claiming one is a single conditional UPDATE, so two concurrent
approvals of the same confirmation cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, select, update

from .clock import Clock
from .errors import ConfirmationError
from .store import Store
from .store.schema import confirmations

__all__ = ["Confirmation", "Confirmations", "plan_hash"]


def plan_hash(plan: dict[str, Any]) -> str:
    """Hash of what the plan will do: its steps' actions and arguments, and who asked."""
    core = {"actor": plan["actor"], "steps": [[s["action"], s["args"]] for s in plan["steps"]]}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Confirmation:
    id: str
    approver: str
    requester: str
    conversation: str
    plan: dict[str, Any]
    plan_hash: str
    policy_hash: str
    versions: dict[str, int]
    status: str
    created_at: datetime
    expires_at: datetime

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "expires_at": self.expires_at.isoformat(), "requester": self.requester,
                "conversation": self.conversation,
                "actions": [s["action"] for s in self.plan["steps"]], "plan_hash": self.plan_hash}


class Confirmations:
    def __init__(self, store: Store, clock: Clock, ttl_minutes: int) -> None:
        self.store = store
        self.clock = clock
        self.ttl = timedelta(minutes=ttl_minutes)

    def create(
        self, conn: Connection, *, approver: str, requester: str, conversation: str, plan: dict[str, Any],
        policy_hash: str, versions: dict[str, int],
    ) -> Confirmation:
        now = self.clock.now()
        item = Confirmation(
            id="cf_" + secrets.token_hex(10), approver=approver, requester=requester, conversation=conversation,
            plan=plan, plan_hash=plan_hash(plan), policy_hash=policy_hash, versions=versions, status="pending",
            created_at=now, expires_at=now + self.ttl,
        )
        conn.execute(confirmations.insert().values(
            id=item.id, approver=approver, requester=requester, conversation=conversation, plan=plan,
            plan_hash=item.plan_hash, policy_hash=policy_hash, versions=versions, status="pending",
            created_at=now.isoformat(), expires_at=item.expires_at.isoformat(),
        ))
        return item

    def get(self, conn: Connection, confirmation_id: str) -> Confirmation | None:
        row = conn.execute(select(confirmations).where(confirmations.c.id == confirmation_id)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["expires_at"] = datetime.fromisoformat(data["expires_at"])
        return Confirmation(**data)

    def usable(self, conn: Connection, confirmation_id: str, user: str) -> Confirmation:
        """The pending confirmation, or an error saying exactly why it cannot be used."""
        if not isinstance(confirmation_id, str) or len(confirmation_id) > 64:
            raise ConfirmationError("that is not a confirmation id", code="confirmation_unknown")
        item = self.get(conn, confirmation_id)
        if item is None:
            raise ConfirmationError(f"no confirmation {confirmation_id!r}", code="confirmation_unknown")
        if item.approver != user:
            raise ConfirmationError(f"confirmation {confirmation_id} is not yours to give",
                                    code="confirmation_not_yours")
        if item.status != "pending":
            raise ConfirmationError(f"confirmation {confirmation_id} was already {item.status}; nothing was "
                                    "changed", code="confirmation_used")
        if self.clock.now() >= item.expires_at:
            raise ConfirmationError(
                f"confirmation {confirmation_id} expired at {item.expires_at.isoformat()}; ask again",
                code="confirmation_expired",
            )
        return item

    def settle(self, conn: Connection, item: Confirmation, status: str) -> None:
        """Move a pending confirmation to ``status`` exactly once (approved, cancelled, superseded)."""
        changed = conn.execute(update(confirmations).where(and_(
            confirmations.c.id == item.id, confirmations.c.status == "pending",
        )).values(status=status)).rowcount
        if changed != 1:
            raise ConfirmationError(f"confirmation {item.id} was already used", code="confirmation_used")
        item.status = status

    def pending(self, user: str) -> list[Confirmation]:
        """The confirmations waiting for ``user``, oldest first."""
        now = self.clock.now()
        return [c for c in self._unanswered(user) if c.expires_at > now]

    def expired(self, user: str) -> list[Confirmation]:
        """The confirmations ``user`` never answered and can no longer give, oldest first."""
        now = self.clock.now()
        return [c for c in self._unanswered(user) if c.expires_at <= now]

    def _unanswered(self, user: str) -> list[Confirmation]:
        with self.store.read() as conn:
            rows = conn.execute(select(confirmations.c.id).where(and_(
                confirmations.c.approver == user, confirmations.c.status == "pending",
            )).order_by(confirmations.c.created_at)).scalars().all()
            found = [self.get(conn, r) for r in rows]
        return [c for c in found if c is not None]
