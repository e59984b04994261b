"""A chat turn's closing writes go with its conversation in one transaction; when that transaction cannot be
written, what already happened (an executed step above all) is still recorded, and nothing runs twice.
Effects are counted in the demo chat system's own file; commits with the store's commit counter."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from sayso.audit import AuditEvent
from sayso.conversation import Chat, Conversations

from .conftest import pipeline_for


def chat_messages(root: Path) -> int:
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return int(conn.execute("select count(*) from messages").fetchone()[0])


def state(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "state.db") as conn:
        return conn.execute(sql).fetchall()


def test_a_turn_commits_once_with_its_conversation(sqlite_root: Path) -> None:
    pipeline = pipeline_for(sqlite_root)
    chat = Chat(pipeline)
    conversation = chat.new("alice")
    store = pipeline.ws.store
    before = store.commits
    assert chat.say("alice", "show my open deals", conversation).status.value == "answered"
    assert store.commits - before == 1  # the audit records and the conversation together
    before = store.commits
    told = chat.say("alice", "tell carol the deck is ready", conversation)
    assert told.status.value == "executed"
    assert store.commits - before == 2  # the plan before the effect; the ledger, audit and conversation after
    turns = state(sqlite_root, f"select turn from messages where conversation = '{conversation}' and role = 'sayso'")
    assert told.turn in {t for (t,) in turns}
    assert pipeline.audit.verify().ok


def test_a_failed_save_still_records_the_executed_step(sqlite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = pipeline_for(sqlite_root)
    chat = Chat(pipeline)
    conversation = chat.new("alice")

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the conversation could not be saved")

    monkeypatch.setattr(Conversations, "save", broken)
    with pytest.raises(RuntimeError):
        chat.say("alice", "tell carol the deck is ready", conversation)
    assert chat_messages(sqlite_root) == 1
    assert state(sqlite_root, "select status from steps") == [("executed",)]
    assert state(sqlite_root, "select status, lease_owner from plans") == [("done", None)]
    closing = state(sqlite_root, "select status from audit where event = 'turn' order by seq")
    assert closing == [("received",), ("executed",)]
    assert pipeline.recover() == []  # nothing left to finish, and nothing sent again
    assert chat_messages(sqlite_root) == 1
    assert pipeline.audit.verify().ok


def test_concurrent_writes_are_committed_before_they_return_and_fail_alone(sqlite_root: Path) -> None:
    """Group commit: writes that queue share a commit, yet each returns only once it is on disk, and one that
    fails rolls back only itself; the audit chain stays whole."""
    pipeline = pipeline_for(sqlite_root)
    store, audit = pipeline.ws.store, pipeline.audit
    before = store.commits
    written: list[str] = []
    unseen: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        with sqlite3.connect(sqlite_root / "state.db") as other:  # another connection: sees only what is committed
            for i in range(20):
                event = AuditEvent("turn", "alice", "received", None, f"c_{n}", f"t_{n}_{i}", "test", {"i": i})
                try:
                    with store.write() as conn:
                        ids = audit.append(conn, [event])
                        if i % 5 == 4:
                            raise ValueError("this write fails alone")
                        if i % 7 == 3:
                            with store.write() as inner:  # a write inside a write: part of the same transaction
                                ids += audit.append(inner, [event])
                except ValueError:
                    continue
                found = {r for (r,) in other.execute("select id from audit where turn = ?", (f"t_{n}_{i}",))}
                with lock:
                    written.extend(ids)
                    unseen.extend(set(ids) - found)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not unseen  # every write was on disk when it returned
    stored = {r for (r,) in state(sqlite_root, "select id from audit where channel = 'test'")}
    assert stored == set(written) and len(written) == 12 * (16 + 3)  # the failed fifth of them left nothing
    assert store.commits - before < 12 * 16  # queued writes shared commits
    assert audit.verify().ok
