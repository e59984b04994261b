"""The audit log: append-only, hash-chained records of every turn and action.

Each record's hash covers its content and the previous record's hash, and a
head row holds the last sequence number and hash, so an edited, removed or
reordered row breaks ``verify``. What the database alone cannot show (rows cut
from the end with the head moved back, an emptied or replaced chain) shows
against checkpoints: the head, noted outside the database, optionally signed.
Records are written in the same transaction as the state change they describe.
Secrets are redacted, on values, before anything is hashed or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from sqlalchemy import Connection, Text, cast, select

from .clock import Clock
from .config import MIN_SECRET_CHARS
from .errors import ConfigurationError, RequestError
from .store import AuditRecord, Store
from .store.schema import audit, audit_head, steps

__all__ = ["EVENTS", "AuditEvent", "AuditLog", "Checkpoint", "Redactor", "Verification", "read_checkpoints",
           "write_checkpoint"]

EVENTS = ("turn", "interpretation", "grounding", "decision", "confirmation", "call", "effect", "error", "instruction")

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key", re.I)
REDACTED = "[redacted]"



class Redactor:
    """Removes secret values and secret-looking fields from audit records.

    Redaction works on values, before anything is serialised: each secret is looked for in the
    text of every string, key and number, as it is and as JSON or Python (an error message's
    ``repr``) would escape it, so quotes, backslashes and control characters cannot hide it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for s in secrets if len(s) >= MIN_SECRET_CHARS for form in _escapes(s)}
        self._values = sorted(forms, key=len, reverse=True)
        # How each form reads inside canonical JSON text, for the fast path's test.
        self._escaped = [_canonical(form)[1:-1] for form in self._values]

    def canonical(self, detail: Mapping[str, Any]) -> str:
        """The detail as canonical JSON with secrets removed.

        Fast path: one serialisation; the walk below runs only when the text holds a
        secret-looking key or a known secret (as it reads once escaped), or cannot be
        serialised as it is (a non-finite number, keys of mixed types).
        """
        try:
            text = _canonical(detail)
        except (TypeError, ValueError):
            return _canonical(self(detail))
        if _SECRET_KEY.search(text) or any(secret in text for secret in self._escaped):
            text = _canonical(self(detail))
        return text

    def text(self, value: str) -> str:
        """``value`` with every known secret in it replaced by ``[redacted]``."""
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if any(secret in value for secret in self._values):  # a secret formed across a replacement
            return REDACTED
        return value

    def __call__(self, value: Any, key: str = "") -> Any:
        """``value`` as JSON-ready data (what ``default=str`` would make of it), secrets removed."""
        if key and _SECRET_KEY.search(key):
            return REDACTED
        if isinstance(value, Mapping):
            clean: dict[str, Any] = {}
            for k, v in value.items():
                name = self.text(_key(k))
                while name in clean:  # two keys alike once redacted: both values are kept
                    name += "'"
                clean[name] = self(v, _key(k))
            return clean
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):  # a numeric secret inside a number
            text = _canonical(value)
            return REDACTED if self.text(text) != text else value
        return self.text(value if isinstance(value, str) else str(value))


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
    """What ``verify`` found: ok, or the first bad record (its id is None when it is missing)."""

    ok: bool
    count: int
    bad_id: str | None = None
    bad_seq: int | None = None
    problem: str = ""
    checkpoints: int = 0  # checkpoints the chain was checked against


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at one moment, written outside the database so that truncation shows.

    ``chain`` is the hash of the first record: it names the chain, so a new one cannot pass
    for the old one. ``seq`` is also the number of records then (the sequence is contiguous).
    """

    chain: str
    seq: int
    hash: str
    at: str
    workspace: str

    def line(self, key: bytes | None) -> str:
        """One JSON line; with a key it carries an HMAC-SHA256 of its other fields (``mac``)."""
        body: dict[str, Any] = {"v": 1, **asdict(self)}
        if key is not None:
            body["mac"] = _mac(key, body)
        return _canonical(body)


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    return hmac.new(key, _canonical({k: v for k, v in body.items() if k != "mac"}).encode(), "sha256").hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def _escapes(secret: str) -> set[str]:
    """A secret as it may appear inside other text: as it is, JSON-escaped, URL-encoded (a query in an
    error), and as ``repr``/``ascii`` write it (within either kind of quotes)."""
    forms = {secret, json.dumps(secret)[1:-1], _canonical(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}
    for python in (repr(secret)[1:-1], ascii(secret)[1:-1]):
        bare = python.replace("\\'", "'")
        forms |= {bare, bare.replace("'", "\\'")}
    return forms


def _key(key: Any) -> str:
    """A mapping key as JSON writes it (``True`` -> ``"true"``); other objects as ``str``."""
    if isinstance(key, str):
        return key
    return _canonical(key) if key is None or isinstance(key, bool | int | float) else str(key)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object hook that refuses a key given twice: parsers disagree on which one counts."""
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"the key {name!r} appears twice")
        found[name] = value
    return found


def _strict_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


_HASHED = ("seq", "id", "at", "actor", "channel", "conversation", "turn", "event", "action", "status")
_TEXT_FIELDS = ("actor", "channel", "conversation", "turn", "action", "status")  # redacted like the detail
_RUN = ("executed", "failed", "outcome_unknown", "undone")  # a step in these states had its call audited
_LEDGER = select(steps.c.key, steps.c.action, steps.c.status, steps.c.at).where(steps.c.status.in_(_RUN)).order_by(
    steps.c.at, steps.c.key)
_CHECKPOINT_FIELDS = {"v": int, "chain": str, "seq": int, "hash": str, "at": str, "workspace": str}


def _row_hash(prev: str, row: Mapping[str, Any], detail: str | None = None) -> str:
    """sha256 over the previous hash, the record's fields and its canonical detail (what ``verify`` checks)."""
    fields = _canonical([row[k] for k in _HASHED])
    detail = _canonical(row["detail"]) if detail is None else detail
    return hashlib.sha256(f"{prev}\n{fields}\n{detail}".encode()).hexdigest()


def _payload(row: Mapping[str, Any], detail: str) -> bytes:
    """What ``_row_hash`` covers after ``{prev}\\n[{seq}``, as UTF-8: the rest of the fields' canonical JSON
    list (seq comes first in it, so the rest starts at its comma), a newline and the detail. The store chains
    with it (``chain_hash``), in SQL on PostgreSQL, before the record's seq is known."""
    rest = _canonical([row[k] for k in _HASHED[1:]])
    return f",{rest[1:]}\n{detail}".encode()


def read_checkpoints(path: Path, key: bytes | None) -> tuple[list[tuple[str, Checkpoint]], str]:
    """The checkpoints in a file, each with where it is (``FILE line N``), or the first problem.

    A line's JSON object starts at its first ``{`` (a syslog prefix before it is ignored); blank
    lines are skipped. With a key every line must carry its valid ``mac``.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigurationError(f"no checkpoint file at {path}; `sayso audit checkpoint` writes one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the checkpoint file {path}: {exc}") from None
    found: list[tuple[str, Checkpoint]] = []
    for number, text in enumerate(lines, start=1):
        where = f"{path} line {number}"
        if not text.strip():
            continue
        try:
            body = _strict_json(text[text.index("{"):]) if "{" in text else None
        except ValueError as exc:
            return found, f"{where} is not valid JSON: {exc}"
        if not isinstance(body, dict) or any(type(body.get(k)) is not t for k, t in _CHECKPOINT_FIELDS.items()):
            return found, f"{where} is not a checkpoint (fields: {', '.join(_CHECKPOINT_FIELDS)})"
        if body["v"] != 1:
            return found, f"the checkpoint at {where} has version {body['v']}, which this sayso does not know"
        if key is not None and not hmac.compare_digest(str(body.get("mac", "")), _mac(key, body)):
            return found, f"the checkpoint at {where} is not signed with the workspace's checkpoint key"
        if key is None and "mac" in body:
            raise ConfigurationError(f"the checkpoint at {where} is signed: set [audit] checkpoint_key to check it")
        if found and body["seq"] < found[-1][1].seq:
            return found, (f"the checkpoint at {where} saw {body['seq']} records, fewer than the one before it "
                           f"({found[-1][1].seq}): the file was edited, or the log replaced in between")
        found.append((where, Checkpoint(body["chain"], body["seq"], body["hash"], body["at"], body["workspace"])))
    return found, ""


def write_checkpoint(path: Path, line: str) -> None:
    """Append one line and make it durable before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLog:
    def __init__(self, store: Store, clock: Clock, redactor: Redactor | None = None) -> None:
        self.store = store
        self.clock = clock
        self.redact = redactor or Redactor()

    def append(self, conn: Connection, events: Iterable[AuditEvent]) -> list[str]:
        """Append events inside the caller's transaction; returns their ids. The store chains them where the
        head is locked (``Store.append_audit``: on PostgreSQL in the database, just before the commit)."""
        batch = list(events)
        if not batch:
            return []
        for item in batch:
            if item.event not in EVENTS:
                raise ValueError(f"unknown audit event {item.event!r}")
        at = self.clock.now().astimezone(UTC).isoformat().replace("+00:00", "Z")
        records = [self._record(item, f"au_{uuid.uuid4().hex[:20]}", at) for item in batch]
        self.store.append_audit(conn, records)
        return [record.id for record in records]

    def _record(self, item: AuditEvent, record_id: str, at: str) -> AuditRecord:
        """The event redacted, with its canonical detail and the payload its hash covers (all but its place)."""
        row: dict[str, Any] = {"id": record_id, "at": at, "actor": item.actor, "channel": item.channel,
                               "conversation": item.conversation, "turn": item.turn, "event": item.event,
                               "action": item.action, "status": item.status}
        for name in _TEXT_FIELDS:
            if row[name] is not None:
                row[name] = self.redact.text(row[name])
        detail = self.redact.canonical(item.detail)
        return AuditRecord(**row, detail=detail, payload=_payload(row, detail))

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

    def verify(self, against: Path | None = None, key: bytes | None = None) -> Verification:
        """Recompute the chain, then compare it with the checkpoints in ``against``; names the first bad record.

        A checkpoint shows what the chain alone cannot: records removed from its end, and a chain
        emptied or replaced (a new database), however consistent the head was made to look.
        """
        result = self._check(against, key)[0]
        if result.ok and against is not None and not result.checkpoints:
            return Verification(False, result.count, None, None,
                                f"{against} holds no checkpoints: nothing to check the chain against")
        return result

    def checkpoint(self, workspace: str, against: Path | None = None,
                   key: bytes | None = None) -> tuple[Verification, Checkpoint | None]:
        """The head as it is now, once the chain verifies (against the earlier checkpoints too):
        a broken or truncated chain is never checkpointed."""
        result, hashes = self._check(against, key)
        if not result.ok:
            return result, None
        self.store.wait_durable()  # the head noted is one a crash cannot undo
        at = self.clock.now().astimezone(UTC).isoformat().replace("+00:00", "Z")
        return result, Checkpoint(hashes.get(1, ""), result.count, hashes.get(result.count, ""), at, workspace)

    def _check(self, against: Path | None, key: bytes | None) -> tuple[Verification, dict[int, str]]:
        checkpoints, problem = read_checkpoints(against, key) if against is not None else ([], "")
        result, hashes, unrecorded = self._walk(checkpoints)
        if not result.ok:
            return result, hashes
        count = result.count
        for where, point in checkpoints:
            if point.seq > count:
                return Verification(False, count, None, count + 1,
                                    f"records {count + 1} to {point.seq} are missing: the chain has {count}, the "
                                    f"checkpoint at {where} ({point.at}) saw {point.seq}"), hashes
            if point.seq and point.chain != hashes[1]:
                return Verification(False, count, None, 1,
                                    f"not the checkpointed chain: its first record differs from the checkpoint "
                                    f"at {where} ({point.at}); the audit log was replaced"), hashes
            if point.seq and point.hash != hashes[point.seq]:
                return Verification(False, count, None, point.seq,
                                    f"differs from the checkpoint at {where} ({point.at}): the chain was "
                                    "rewritten"), hashes
        if problem or unrecorded:
            return Verification(False, count, None, None, problem or unrecorded), hashes
        return Verification(True, count, checkpoints=len(checkpoints)), hashes

    def _walk(self, checkpoints: Iterable[tuple[str, Checkpoint]]) -> tuple[Verification, dict[int, str], str]:
        """Recompute the chain in one snapshot. Also returns the hashes of the first and last records and of
        each checkpointed one, by seq, and a step of the effect ledger whose call the chain lacks (a problem
        reported after the checkpoints', which say more precisely what is missing)."""
        wanted = {1} | {point.seq for _, point in checkpoints}
        hashes: dict[int, str] = {}
        prev, expected_seq, count = "", 1, 0
        last_id: str | None = None
        calls: set[str] = set()
        columns = [audit.c[name] for name in (*_HASHED, "prev_hash", "hash")]
        query = select(*columns, cast(audit.c.detail, Text).label("detail")).order_by(audit.c.seq)
        with self.store.snapshot() as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
            for found in conn.execute(query):
                row = dict(found._mapping)
                count += 1
                if row["seq"] != expected_seq:
                    return Verification(False, count, row["id"], row["seq"], f"sequence jumps from "
                                        f"{expected_seq - 1} to {row['seq']}: records removed"), hashes, ""
                if row["prev_hash"] != prev:
                    return Verification(False, count, row["id"], row["seq"],
                                        "does not follow the previous record"), hashes, ""
                try:
                    parsed = _strict_json(row["detail"])
                except ValueError as exc:
                    return Verification(False, count, row["id"], row["seq"],
                                        f"its detail is ambiguous JSON ({exc})"), hashes, ""
                if _row_hash(prev, row, _canonical(parsed)) != row["hash"]:
                    return Verification(False, count, row["id"], row["seq"], "its content was changed"), hashes, ""
                if row["seq"] in wanted:
                    hashes[row["seq"]] = row["hash"]
                if row["event"] == "call" and isinstance(parsed, dict):
                    calls.add(str(parsed.get("idempotency_key")))
                prev, expected_seq, last_id = row["hash"], expected_seq + 1, row["id"]
            ledger = conn.execute(_LEDGER).all()
        if head.seq != expected_seq - 1 or head.hash != prev:
            return Verification(False, count, last_id, expected_seq - 1,
                                f"the chain ends at {expected_seq - 1} but the head says {head.seq}: "
                                "records removed from the end"), hashes, ""
        hashes[count] = prev
        # Each step the effect ledger shows as run was recorded with its call, in the same transaction.
        unrecorded = next((step for step in ledger if self.redact.text(step.key) not in calls), None)
        if unrecorded is not None:
            return Verification(True, count), hashes, (
                f"step {unrecorded.key} ({unrecorded.action}, {unrecorded.status} at {unrecorded.at}) is in the "
                "effect ledger but its call record is not in the chain: records were removed")
        return Verification(True, count), hashes, ""

