"""Background duties with several processes on one PostgreSQL database: standing instructions fire once per
due time when three ``sayso tick`` passes (what ``sayso worker`` and ``sayso serve`` run) look at once; the
firings are counted in the demo chat system. And the one lock all writers share, the audit chain's head, is
taken by one statement sent with the commit, and what a request costs in round trips."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from sayso import Workspace
from sayso.audit import AuditEvent
from sayso.conversation import Chat
from sayso.instructions import InstructionBook
from sayso.store import Store

from .conftest import NOW, pipeline_for
from .processes import pg_database, pg_workspace, tokens_for

# The chaining transaction's commit does not wait for the disk; the next one, in the same message, does.
ASYNC = "set local synchronous_commit = off; select sayso_audit_append("
DURABLE = "; commit; select pg_logical_emit_message(true, 'sayso', 'durable')"


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield from pg_workspace(tmp_path / "ws")


def messages_to(root: Path, person: str) -> list[str]:
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return [r[0] for r in conn.execute('select text from messages where "to" = ? order by id', (person,))]


def ticks_at_once(root: Path, to: str, processes: int = 3) -> None:
    """``processes`` ``sayso tick --to`` passes started together; each must succeed."""
    running = [subprocess.Popen([sys.executable, "-m", "sayso", "tick", "--workspace", str(root), "--to", to],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    for process in running:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err + out


def test_instructions_fire_once_per_due_time_with_three_processes_looking(root: Path) -> None:
    said = [Chat(pipeline_for(root, user, NOW)).say(user, words) for user, words in (
        ("alice", "every weekday at 8:30 show me my open deals"),
        ("alice", "tomorrow at 9, tell carol the renewal is signed"),
        ("bob", "tomorrow at 9, tell carol the demo went well"))]
    assert [s.status.value for s in said] == ["executed"] * 3, [s.reply for s in said]
    ticks_at_once(root, "2026-11-26T14:00")  # Thursday 09:00 New York: the 08:30 and the two at 9
    assert len(messages_to(root, "alice")) == 1, [m[:90] for m in messages_to(root, "alice")]
    assert len(messages_to(root, "carol")) == 2
    ticks_at_once(root, "2026-11-26T14:00")  # the same time again: nothing more
    ticks_at_once(root, "2026-11-27T13:45")  # Friday 08:45 New York: the recurring one, once
    assert len(messages_to(root, "alice")) == 2
    assert len(messages_to(root, "carol")) == 2
    ws = Workspace.load(root)
    try:
        book = InstructionBook(ws.store)
        fired = [f for item in book.of(None, status=None) for f in book.firings_of(item.id)]
    finally:
        ws.close()
    assert len(fired) == 4 and {f["status"] for f in fired} == {"executed"}


@contextmanager
def round_trips(engine: Engine) -> Iterator[list[str]]:
    """What each round trip to PostgreSQL sent, as libpq's protocol trace shows it (one run of messages from
    the client before the server answers), for the pooled connections checked out meanwhile: each trip's
    statements in order, lower case, joined by "; " (a simple query's text, an extended one's statement), with
    the values bound to them after each ("$1 = ..." as the trace quotes them)."""
    found: list[str] = []
    with tempfile.TemporaryFile("w+") as trace:

        def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            from psycopg.pq import Trace

            dbapi_conn.pgconn.trace(trace.fileno())
            dbapi_conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)

        def checkin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.pgconn.untrace()  # flushes this connection's trace

        event.listen(engine.pool, "checkout", checkout)
        event.listen(engine.pool, "checkin", checkin)
        try:
            yield found
        finally:
            event.remove(engine.pool, "checkout", checkout)
            event.remove(engine.pool, "checkin", checkin)
            trace.seek(0)
            messages: list[list[str]] = []  # direction, message, content
            for line in trace:
                if line.startswith(("F\t", "B\t")):
                    direction, _size, message, *rest = line.rstrip("\n").split("\t", 3) + [""]
                    messages.append([direction, message, rest[0]])
                elif messages:  # a statement's next line (a newline in a quoted value)
                    messages[-1][2] += "\n" + line.rstrip("\n")
            sender, trip = "B", []
            for direction, message, content in messages:
                if direction == "F" and sender == "B" and trip:
                    found.append("; ".join(trip))
                    trip = []
                if direction == "F" and (sent := _sent(message, content)):
                    trip.append(sent)
                sender = direction
            if trip:
                found.append("; ".join(trip))


def _sent(message: str, content: str) -> str:
    """A traced message's statement, lower case: a simple query's text; a Parse's, after the statement's name;
    a Bind's values ("$1 = ..."), if it binds any; a Bind of a statement prepared earlier, "bind"; nothing for
    the other messages (Describe, Execute, Sync, Flush)."""
    if message == "Query":
        return content.strip().removeprefix('"').removesuffix('"').lower()
    if message == "Parse":
        return re.sub(r'" \d+( \w+)*$', "", content.split('" "', 1)[-1]).lower()
    if message == "Bind":
        _portal, name, rest = content.strip().split(" ", 2)
        prepared, values = name != '""', rest if "'" in rest else ""
        return ("bind " if prepared else "") + (f"$1 = {values}" if values else "bind" * prepared)
    return ""


def test_on_postgresql_a_write_chains_its_audit_records_in_one_statement_sent_with_its_commit(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The head row's lock serialises every process's writes: a transaction's audit records are chained by the
    database in one statement (lock the head, hash, insert, move the head) at its end, sent in one message with
    the COMMIT, so the lock is held for that statement and the commit, with no round trip in between. A read
    turn's whole write (BEGIN, its state, its messages, the chain, COMMIT) is that one message. The chain stays one and
    verifies; two appends in one transaction keep their order."""
    import sayso.store

    monkeypatch.setattr(sayso.store, "PING_AFTER_IDLE_SECONDS", 3600.0)  # a busy pool's count (no idle pings)
    pipeline = pipeline_for(root, "alice")
    chat = Chat(pipeline)
    conversation = chat.new("alice")
    with round_trips(pipeline.ws.store.engine) as trips:
        said = chat.say("alice", "which of my deals close in the next 30 days?", conversation)
        assert said.status.value == "answered"
        with pipeline.ws.store.write() as conn:  # two appends in one transaction: in order, both last
            pipeline.audit.append(conn, [AuditEvent("turn", "alice", "answered", None, conversation, "t1", "api")])
            conn.execute(text("select 1"))
            pipeline.audit.append(conn, [AuditEvent("turn", "alice", "answered", None, conversation, "t2", "api")])
    chained = [sent for sent in trips if "sayso_audit_append" in sent]
    assert len(chained) == 2 and all(ASYNC in sent and sent.endswith(DURABLE) for sent in chained), trips
    turn = chained[0]  # the turn's whole write, in one message
    assert turn.startswith("begin; update conversations set state=") and turn.count("; insert into messages ") == 2
    assert turn.index("; insert into messages ") < turn.index(ASYNC), turn
    assert not [sent for sent in trips if "audit_head" in sent or sent.startswith("commit")]  # nothing else locks
    assert trips[-3:-1] == ["begin", "select 1"] and trips[-1].startswith(ASYNC), trips[-3:]
    assert '"turn": "t1"' in trips[-1] and trips[-1].index('"turn": "t1"') < trips[-1].index('"turn": "t2"')
    verified = pipeline.audit.verify()
    assert verified.ok, verified
    turns = [r["turn"] for r in pipeline.audit.list(conversation=conversation)][-2:]
    assert turns == ["t1", "t2"]


def test_on_postgresql_a_read_turn_and_an_action_are_three_round_trips_each(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a request costs the database, counted in libpq's protocol trace (autocommit reads have no BEGIN
    or COMMIT): a read turn is the rate-limit statement, the conversation's load, then one message with its
    whole write (BEGIN, its state, its messages, the audit chain's statement, COMMIT); an action, the
    rate-limit statement and two transactions, each one such message: the plan and its steps before the
    effect, the step's outcome and the plan's end after it.
    Nothing per request reconnects, pings, checks the schema or reads the token again."""
    pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
    from fastapi.testclient import TestClient

    import sayso.store
    from sayso.serve import create_app

    # A connection idle for PING_AFTER_IDLE_SECONDS is pinged first (one more round trip, tested below): on a
    # loaded machine the warm-up turn can leave one idle that long, so the count here is of a busy pool's.
    monkeypatch.setattr(sayso.store, "PING_AFTER_IDLE_SECONDS", 3600.0)
    token = tokens_for(root, ("alice",))["alice"]
    app = create_app(root, now=NOW)
    engine = app.state.service.ws.store.engine
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as http:
        conversation = http.post("/v1/conversations").json()["id"]
        ask = {"text": "which of my deals close in the next 30 days?"}
        assert http.post(f"/v1/conversations/{conversation}/messages", json=ask).status_code == 200  # warm
        with round_trips(engine) as read_trips:
            read = http.post(f"/v1/conversations/{conversation}/messages", json=ask).json()
        with round_trips(engine) as trips:
            sent = http.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": "counted"}}).json()
    assert read["status"] == "answered" and sent["status"] == "executed"
    assert len(read_trips) == 3, read_trips
    assert read_trips[2].startswith("begin; update conversations") and read_trips[2].endswith(DURABLE), read_trips
    assert len(trips) == 3 and [t[:len("begin; insert into plans")] for t in trips[1:]] == [
        "begin; insert into plans", "begin; update steps set "], trips
    assert all(ASYNC in t and t.endswith(DURABLE) for t in trips[1:]), trips
    assert messages_to(root, "carol")[-1] == "counted"


def _backend(store: Store) -> int:
    """The server process behind the pooled connection a read gets."""
    with store.read() as conn:
        return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


def _end_backends(url: str) -> None:
    """End every other session on the database, from a connection of its own (a restart, as the pool sees it)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
                      "and pid <> pg_backend_pid()")


def test_a_pooled_connection_the_server_dropped_is_replaced_when_pinged_after_idling(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections are pinged only after idling (not at every checkout): one whose backend the server ended
    meanwhile (a restart, a failover, an idle timeout) is found dead by the ping and replaced, unseen; one used
    again at once fails its statement, and SQLAlchemy then replaces the whole pool."""
    import sayso.store

    for url in pg_database():
        store = Store.open(url)
        try:
            first = _backend(store)
            _end_backends(url)
            monkeypatch.setattr(sayso.store, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection counts as idle
            assert _backend(store) != first  # pinged, found dead, replaced: the read never saw it

            monkeypatch.setattr(sayso.store, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never pinged
            second = _backend(store)
            _end_backends(url)
            with pytest.raises(OperationalError):
                _backend(store)
            assert _backend(store) not in (first, second)  # the pool was replaced
        finally:
            store.dispose()


def test_on_postgresql_a_checkpoint_notes_only_a_head_on_disk(root: Path) -> None:
    """The chain's transactions commit without waiting for the disk (the wait comes after, in the same message),
    so for a moment others can read a head a crash would undo: a checkpoint, which tells the head to the outside,
    waits for a flush (which covers every earlier commit) after reading it and before noting it."""
    pipeline = pipeline_for(root, "alice")
    chat = Chat(pipeline)
    assert chat.say("alice", "which of my deals close in the next 30 days?", chat.new("alice")).status.value \
        == "answered"
    with round_trips(pipeline.ws.store.engine) as trips:
        verified, point = pipeline.audit.checkpoint("demo")
    assert verified.ok and point is not None and point.seq == verified.count
    waits = [i for i, sent in enumerate(trips) if "pg_logical_emit_message(true" in sent]
    reads = [i for i, sent in enumerate(trips) if "audit" in sent and "pg_logical" not in sent]
    assert waits and reads and max(reads) < waits[-1], trips
