"""Background duties with several processes on one PostgreSQL database: standing instructions fire once per
due time when three ``sayso tick`` passes (what ``sayso worker`` and ``sayso serve`` run) look at once; the
firings are counted in the demo chat system. And the one lock all writers share, the audit chain's head, is
taken last in a transaction."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from sayso import Workspace
from sayso.audit import AuditEvent
from sayso.conversation import Chat
from sayso.instructions import InstructionBook
from sayso.store import Store

from .conftest import NOW, pipeline_for
from .processes import pg_database, pg_workspace, tokens_for


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


def test_on_postgresql_a_write_takes_the_audit_head_last_and_holds_it_only_to_the_commit(root: Path) -> None:
    """The head row's lock serialises every process's writes: a turn's transaction takes it after its other
    statements, so it is held for the append and the commit only. The chain stays one and verifies."""
    pipeline = pipeline_for(root, "alice")
    chat = Chat(pipeline)
    conversation = chat.new("alice")
    statements: list[str] = []
    engine = pipeline.ws.store.engine

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).lower())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        said = chat.say("alice", "which of my deals close in the next 30 days?", conversation)
        assert said.status.value == "answered"
        with pipeline.ws.store.write() as conn:  # two appends in one transaction: in order, both last
            pipeline.audit.append(conn, [AuditEvent("turn", "alice", "answered", None, conversation, "t1", "api")])
            conn.execute(text("select 1"))
            pipeline.audit.append(conn, [AuditEvent("turn", "alice", "answered", None, conversation, "t2", "api")])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    turn = statements[statements.index("update conversations set"):]  # the turn's save: state, messages, audit
    assert turn[:2] == ["update conversations set", "insert into messages"]
    assert turn[2:4] == ["select audit_head.seq, audit_head.hash", "with moved as"]  # rows and head: one statement
    assert statements[-5:] == ["select 1", "select audit_head.seq, audit_head.hash", "with moved as",
                               "select audit_head.seq, audit_head.hash", "with moved as"]
    verified = pipeline.audit.verify()
    assert verified.ok, verified
    turns = [r["turn"] for r in pipeline.audit.list(conversation=conversation)][-2:]
    assert turns == ["t1", "t2"]


def test_on_postgresql_a_read_turn_is_eight_round_trips_and_an_action_thirteen(root: Path) -> None:
    """What a request costs the database, counted where the statements leave (SQLAlchemy's events; BEGIN and
    COMMIT are round trips of their own, autocommit reads have neither): a read turn is the rate-limit
    statement, the conversation's load, then BEGIN, its state, its messages, the audit append (the head, then
    the rows with the head's move in one statement) and COMMIT; an action, the rate-limit statement and two
    transactions (the plan, then its outcome). Nothing per request reconnects, pings, checks the schema or reads
    the token again."""
    pytest.importorskip("fastapi", reason="the HTTP service needs its extra: pip install 'sayso[serve]'")
    from fastapi.testclient import TestClient

    from sayso.serve import create_app

    token = tokens_for(root, ("alice",))["alice"]
    app = create_app(root, now=NOW)
    trips: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        trips.append(" ".join(sql.split()[:2]).lower())

    def begin(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            trips.append("begin")

    def commit(_conn: Any) -> None:
        trips.append("commit")

    engine = app.state.service.ws.store.engine
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as http:
        conversation = http.post("/v1/conversations").json()["id"]
        ask = {"text": "which of my deals close in the next 30 days?"}
        assert http.post(f"/v1/conversations/{conversation}/messages", json=ask).status_code == 200  # warm
        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "begin", begin)
        event.listen(engine, "commit", commit)
        try:
            read = http.post(f"/v1/conversations/{conversation}/messages", json=ask).json()
            read_trips, trips[:] = list(trips), []
            sent = http.post("/v1/actions/chat.send", json={"args": {"to": "carol", "text": "counted"}}).json()
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            event.remove(engine, "begin", begin)
            event.remove(engine, "commit", commit)
    assert read["status"] == "answered" and sent["status"] == "executed"
    assert len(read_trips) == 8, read_trips
    assert read_trips[2:] == ["begin", "update conversations", "insert into", "select audit_head.seq,",
                              "with moved", "commit"]
    assert len(trips) == 13 and trips.count("begin") == trips.count("commit") == 2, trips
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
