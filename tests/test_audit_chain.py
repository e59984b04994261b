"""The audit chain that PostgreSQL builds (``sayso_audit_append``, migration 0010) is the chain Python builds on
SQLite and verifies: the same records get the same hashes, byte for byte, whatever their text holds; writers
in several processes and threads at once make one linear chain; and a failed append leaves no trace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Text, cast, insert, select, text
from sqlalchemy.exc import IntegrityError

import sayso.audit
from sayso import Clock
from sayso.audit import AuditEvent, AuditLog, Redactor
from sayso.store import Store, schema

from .processes import pg_database

PINNED = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)

# Text that JSON escapes, or that PostgreSQL or its driver could read differently: outside ASCII (two and
# four bytes in UTF-8, a surrogate pair in JSON's escapes), JavaScript's line separator, controls and NUL,
# quotes of every kind, the driver's placeholders, dollar quotes, and SQL.
AWKWARD = "zoë 日本 😀 \u2028 \x00 tab\t nl\n cr\r \" \\ ' %s %(x)s {} {0} $$ $a$ ; drop table audit; --"
ACTOR = AWKWARD.replace("\x00", "")[:60]  # a text column (not JSON) holds no NUL on PostgreSQL
EVENTS = [
    [AuditEvent("turn", "zoë", "received", None, "c_'quoted'", "t_1", "api",
                {"text": AWKWARD, "zeta": 1, "alpha": {"ß": [1, 2.5, 0.1, 1e-07, 2**70, True, None, "é"]},
                 "Aa": {"b": {}, "a": []}, "password": "hunter2-secret", "at": PINNED})],
    [AuditEvent("interpretation", "alice", "plan", "crm.find_deals", "c_1", "t_1", "cli",
                {"steps": [{"args": {"owner": "alice", "note": AWKWARD}, "confidence": 0.943}]}),
     AuditEvent("decision", ACTOR, "allowed", "crm.find_deals", None, None, "slack", {}),
     AuditEvent("effect", "alice", "ok", "chat.send", "c_1", "t_1", "cli", {"日本": "語", "\u2028": "\x00"})],
]


class _Ids:
    """Stands in for ``uuid`` in ``sayso.audit``, so both stores chain records with the same ids."""

    def __init__(self) -> None:
        self.n = 0

    def uuid4(self) -> Any:
        self.n += 1
        return type("U", (), {"hex": f"{self.n:020x}{0:012x}"})()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_database()


def _chain(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, Any]], AuditLog]:
    """The ``EVENTS`` appended on a fresh store at ``url`` (two appends in one transaction, then one alone);
    the stored rows, detail as stored text."""
    monkeypatch.setattr(sayso.audit, "uuid", _Ids())
    store = Store.open(url)
    log = AuditLog(store, Clock(PINNED), Redactor(["hunter2-secret"]))
    with store.write() as conn:
        log.append(conn, EVENTS[0])
        log.append(conn, EVENTS[1])
    log.record(EVENTS[0])
    with store.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(*[c for c in schema.audit.c if c.name != "detail"],
                   cast(schema.audit.c.detail, Text).label("detail")).order_by(schema.audit.c.seq))]
    return rows, log


def test_postgresql_chains_each_record_exactly_as_python_does(pg_url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    on_sqlite, sqlite_log = _chain(f"sqlite:///{tmp_path / 'state.db'}", monkeypatch)
    on_postgresql, pg_log = _chain(pg_url, monkeypatch)
    try:
        assert len(on_postgresql) == 5
        assert [r["seq"] for r in on_postgresql] == list(range(1, 6))
        fields = ("seq", "id", "at", "actor", "channel", "conversation", "turn", "event", "action", "status",
                  "prev_hash", "hash")
        assert [[r[f] for f in fields] for r in on_postgresql] == [[r[f] for f in fields] for r in on_sqlite]
        # Each hash is what verify's own formula gives for the stored record, and the stored text is the text
        # hashed: the canonical detail, secrets redacted, every character kept.
        prev = ""
        for row in on_postgresql:
            canonical = sayso.audit._canonical(sayso.audit._strict_json(row["detail"]))
            assert row["prev_hash"] == prev and row["hash"] == sayso.audit._row_hash(prev, row, canonical)
            prev = row["hash"]
        first = sayso.audit._strict_json(on_postgresql[0]["detail"])
        assert first["text"] == AWKWARD and first["password"] == "[redacted]"
        assert list(first) == sorted(first) and first["at"] == str(PINNED)
        assert on_postgresql[0]["detail"] == sayso.audit._canonical(first)  # stored as the canonical text
        assert on_postgresql[2]["actor"] == ACTOR
        for log in (pg_log, sqlite_log):
            verified = log.verify()
            assert verified.ok and verified.count == 5, verified
    finally:
        pg_log.store.dispose()
        sqlite_log.store.dispose()


_WRITER = """
import sys, threading
from datetime import UTC, datetime
from sayso import Clock
from sayso.audit import AuditEvent, AuditLog
from sayso.store import Store

url, process, threads, transactions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = Store.open(url)
log = AuditLog(store, Clock(datetime(2026, 11, 25, 14, 0, tzinfo=UTC)))
start = threading.Barrier(threads)

def write(thread):
    start.wait()
    for n in range(transactions):
        writer = f"{process}.{thread}"
        events = [AuditEvent("turn", "alice", "answered", None, writer, f"{n}.{k}", "api", {"n": n, "k": k})
                  for k in range(1 + n % 3)]
        with store.write() as conn:
            log.append(conn, events[:1])
            log.append(conn, events[1:])

workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
store.dispose()
"""


def test_writers_in_several_processes_and_threads_make_one_linear_chain(pg_url: str) -> None:
    """3 processes of 4 threads, each thread 12 transactions of 1 to 3 records (two appends each), at once."""
    Store.open(pg_url).dispose()  # the schema, before the writers race for it
    processes, threads, transactions = 3, 4, 12
    running = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, str(p), str(threads), str(transactions)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for p in range(processes)]
    for process in running:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err + out
    store = Store.open(pg_url)
    try:
        log = AuditLog(store, Clock(PINNED))
        verified = log.verify()
        per_writer = transactions // 3 * (1 + 2 + 3)
        assert verified.ok and verified.count == processes * threads * per_writer, verified
        rows = log.list()
        assert [r["seq"] for r in rows] == list(range(1, verified.count + 1))
        for p in range(processes):
            for t in range(threads):
                mine = [r["turn"] for r in rows if r["conversation"] == f"{p}.{t}"]
                assert mine == [f"{n}.{k}" for n in range(transactions) for k in range(1 + n % 3)]
        with store.read() as conn:
            head = conn.execute(select(schema.audit_head)).one()
        assert (head.seq, head.hash) == (rows[-1]["seq"], log.get(rows[-1]["id"])["hash"])
    finally:
        store.dispose()


def test_a_failed_append_rolls_back_its_whole_transaction(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append that fails in the database (here a record id already used) fails the write with SQLAlchemy's
    error, and nothing of the transaction stays: neither its other statements nor the head's move."""
    store = Store.open(pg_url)
    try:
        log = AuditLog(store, Clock(PINNED))
        monkeypatch.setattr(sayso.audit, "uuid", _Ids())
        log.record([AuditEvent("turn", "alice", "answered")])
        monkeypatch.setattr(sayso.audit, "uuid", _Ids())  # the same ids again
        with pytest.raises(IntegrityError), store.write() as conn:
            conn.execute(insert(schema.workspace_keys).values(name="made-in-the-failed-write", value="v"))
            log.append(conn, [AuditEvent("turn", "bob", "answered")])
        with store.read() as conn:
            assert conn.execute(text("select count(*) from workspace_keys")).scalar() == 0
            assert conn.execute(text("select seq from audit_head")).scalar() == 1
        log.record([AuditEvent("turn", "carol", "answered")])  # the chain goes on from where it was
        verified = log.verify()
        assert verified.ok and verified.count == 2, verified
        assert [r["actor"] for r in log.list()] == ["alice", "carol"]
    finally:
        store.dispose()


def test_outside_a_store_write_the_records_are_chained_at_once(pg_url: str) -> None:
    """A transaction the store did not open (no commit of its own to ride with): the chain's statement runs at
    once, inside it, and commits or rolls back with it."""
    store = Store.open(pg_url)
    try:
        log = AuditLog(store, Clock(PINNED))
        with store.engine.begin() as conn:
            log.append(conn, [AuditEvent("turn", "alice", "answered")])
            assert conn.execute(text("select seq from audit_head")).scalar() == 1  # already chained, in it
        with pytest.raises(RuntimeError), store.engine.begin() as conn:
            log.append(conn, [AuditEvent("turn", "bob", "answered")])
            raise RuntimeError("the caller's transaction fails")
        verified = log.verify()
        assert verified.ok and verified.count == 1, verified
        assert [r["actor"] for r in log.list()] == ["alice"]
    finally:
        store.dispose()
