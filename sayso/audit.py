"""The audit log: append-only, hash-chained records of every turn and action.

Each record's hash covers its content and the previous record's hash, and a
head row holds the last sequence number and hash, so an edited, removed or
reordered row (the last one included) breaks ``verify``. Records are written
in the same transaction as the state change they describe. Secrets are
redacted before anything is hashed or stored.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from .clock import Clock
from .errors import RequestError
from .store import Store
from .store.schema import audit, audit_head

__all__ = ["EVENTS", "AuditEvent", "AuditLog", "Redactor", "Verification"]

EVENTS = ("turn", "interpretation", "grounding", "decision", "confirmation", "call", "effect", "error", "instruction")

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key", re.I)
REDACTED = "[redacted]"

_INSERT = audit.insert()
_SET_HEAD = update(audit_head).where(audit_head.c.id == 1).values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))


class Redactor:
    """Removes secret values and secret-looking fields from audit details."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def canonical(self, detail: Mapping[str, Any]) -> str:
        """The detail as canonical JSON with secrets removed.

        Fast path: one serialisation; the walk below runs only when the text holds a
        secret-looking key or a known secret value.
        """
        text = _canonical(detail)
        if _SECRET_KEY.search(text) or any(secret in text for secret in self._values):
            text = _canonical(self(detail))
        return text

    def __call__(self, value: Any, key: str = "") -> Any:
        if key and _SECRET_KEY.search(key):
            return REDACTED
        if isinstance(value, Mapping):
            return {str(k): self(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
        return value


@dataclass
class AuditEvent:
    event: str
    actor: str
    status: str
    action: str | None = None
    conversation: str | None = None
    turn: str | None = None
    channel: str = "cli"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verification:
    ok: bool
    count: int
    bad_id: str | None = None
    bad_seq: int | None = None
    problem: str = ""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


_HASHED = ("seq", "id", "at", "actor", "channel", "conversation", "turn", "event", "action", "status")


def _row_hash(prev: str, row: Mapping[str, Any], detail: str | None = None) -> str:
    """sha256 over the previous hash, the record's fields and its canonical detail."""
    fields = _canonical([row[k] for k in _HASHED])
    detail = _canonical(row["detail"]) if detail is None else detail
    return hashlib.sha256(f"{prev}\n{fields}\n{detail}".encode()).hexdigest()


class AuditLog:
    def __init__(self, store: Store, clock: Clock, redactor: Redactor | None = None) -> None:
        self.store = store
        self.clock = clock
        self.redact = redactor or Redactor()

    def append(self, conn: Connection, events: Iterable[AuditEvent]) -> list[str]:
        """Append events inside the caller's transaction; returns their ids."""
        batch = list(events)
        if not batch:
            return []
        for item in batch:
            if item.event not in EVENTS:
                raise ValueError(f"unknown audit event {item.event!r}")
        seq, prev = self.store.lock_audit_head(conn)
        at = self.clock.now().astimezone(UTC).isoformat().replace("+00:00", "Z")
        rows = []
        for item in batch:
            seq += 1
            row: dict[str, Any] = {
                "seq": seq,
                "id": f"au_{uuid.uuid4().hex[:20]}",
                "at": at,
                "actor": item.actor,
                "channel": item.channel,
                "conversation": item.conversation,
                "turn": item.turn,
                "event": item.event,
                "action": item.action,
                "status": item.status,
                "prev_hash": prev,
            }
            detail = self.redact.canonical(item.detail)
            # Stored as parsed JSON; canonical JSON round-trips, so verify recomputes the same text.
            row["detail"] = json.loads(detail)
            row["hash"] = prev = _row_hash(prev, row, detail)
            rows.append(row)
        conn.execute(_INSERT, rows)
        conn.execute(_SET_HEAD, {"b_seq": seq, "b_hash": prev})
        return [r["id"] for r in rows]

    def record(self, events: Iterable[AuditEvent]) -> list[str]:
        """Append events in a transaction of their own."""
        with self.store.write() as conn:
            return self.append(conn, events)

    def list(
        self,
        *,
        user: str | None = None,
        conversation: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        query = select(audit).order_by(audit.c.seq)
        if user:
            query = query.where(audit.c.actor == user)
        if conversation:
            query = query.where(audit.c.conversation == conversation)
        if action:
            query = query.where(audit.c.action == action)
        if since:
            query = query.where(audit.c.at >= since.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        if limit:
            query = query.limit(limit)
        with self.store.read() as conn:
            return [self._public(dict(r._mapping)) for r in conn.execute(query)]

    def get(self, record_id: str) -> dict[str, Any]:
        with self.store.read() as conn:
            row = conn.execute(select(audit).where(audit.c.id == record_id)).first()
        if row is None:
            raise RequestError(f"no audit record {record_id!r}", code="unknown_audit_record")
        return self._public(dict(row._mapping), full=True)

    @staticmethod
    def _public(row: dict[str, Any], full: bool = False) -> dict[str, Any]:
        keys = ["id", "seq", "at", "actor", "channel", "conversation", "turn", "event", "action", "status",
                "detail"]
        if full:
            keys += ["prev_hash", "hash"]
        return {k: row[k] for k in keys}

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        with self.store.read() as conn:
            for row in conn.execute(select(audit).order_by(audit.c.seq)):
                yield dict(row._mapping)

    def verify(self) -> Verification:
        """Recompute the chain; the first broken record is named."""
        prev, expected_seq, count = "", 1, 0
        last_id: str | None = None
        for row in self.iter_rows():
            count += 1
            if row["seq"] != expected_seq:
                return Verification(False, count, row["id"], row["seq"],
                                    f"sequence jumps from {expected_seq - 1} to {row['seq']}: records removed")
            if row["prev_hash"] != prev:
                return Verification(False, count, row["id"], row["seq"], "does not follow the previous record")
            if _row_hash(prev, row) != row["hash"]:
                return Verification(False, count, row["id"], row["seq"], "its content was changed")
            prev, expected_seq, last_id = row["hash"], expected_seq + 1, row["id"]
        with self.store.read() as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
        if head.seq != expected_seq - 1 or head.hash != prev:
            return Verification(False, count, last_id, expected_seq - 1,
                                f"the chain ends at {expected_seq - 1} but the head says {head.seq}: "
                                "records removed from the end")
        return Verification(True, count)
