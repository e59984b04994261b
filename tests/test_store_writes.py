"""Store.execute_at_commit: writes whose results nobody reads, sent with the commit (on PostgreSQL in the
same message as the audit chain's statement and the COMMIT), stored exactly as given, or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from sayso.audit import AuditEvent, AuditLog
from sayso.clock import Clock, parse_time
from sayso.conversation import _ADD_MESSAGES, _SAVE_STATE
from sayso.store import Store, schema

from .processes import pg_database

NOW = "2026-11-25T14:00:00Z"
# Values a literal must carry unchanged: quotes, backslashes, newlines and tabs, text outside ASCII, an emoji,
# JavaScript's line separator, SQL and placeholders, percent signs (the driver's own placeholders), JSON.
AWKWARD = ["it's \"quoted\"", "back\\slash \\n not a newline", "line\nbreak\tand tab", "Zoë · 東京 · 🚀",
           "sep\u2028arator", "'); drop table messages; --", "%s %(x)s $1 ?", "100% sure"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    urls = pg_database() if request.param == "postgresql" else iter([f"sqlite:///{tmp_path / 'state.db'}"])
    for url in urls:
        opened = Store.open(url)
        try:
            with opened.write() as conn:
                conn.execute(schema.conversations.insert().values(
                    id="c1", user_id="alice", channel="api", created_at=NOW, updated_at=NOW, state={}))
            yield opened
        finally:
            opened.dispose()


def _message(body: str, data: Any = None) -> dict[str, Any]:
    return {"conversation": "c1", "at": NOW, "role": "person", "user_id": "alice", "turn": "t1", "text": body,
            "status": None, "data": data}


def _audit(store: Store) -> AuditLog:
    return AuditLog(store, Clock(parse_time(NOW, "UTC")))


def _said(store: Store) -> list[tuple[str, Any]]:
    with store.read() as conn:
        return [(r.text, r.data) for r in conn.execute(
            select(schema.messages.c.text, schema.messages.c.data).order_by(schema.messages.c.id))]


def test_values_are_stored_exactly_as_given(store: Store) -> None:
    state = {"focus": [{"said": value} for value in AWKWARD], "nested": {"n": 1.5, "none": None, "yes": True}}
    with store.write() as conn:
        store.execute_at_commit(conn, _SAVE_STATE, [{"b_id": "c1", "b_state": state, "b_at": "2026-11-26T00:00:00Z"}])
        store.execute_at_commit(conn, _ADD_MESSAGES, [_message(value, {"v": value}) for value in AWKWARD])
    assert _said(store) == [(value, {"v": value}) for value in AWKWARD]
    with store.read() as conn:
        row = conn.execute(select(schema.conversations.c.state, schema.conversations.c.updated_at)).one()
    assert row.state == state and row.updated_at == "2026-11-26T00:00:00Z"


def test_queued_writes_run_in_their_order_in_the_transaction_of_the_audit_records(store: Store) -> None:
    """The queued writes run in the order they were queued, in the same transaction as what runs at once and
    the audit records appended in it (relative to what runs at once, they may run later: on PostgreSQL at the
    commit, so nothing else in the transaction may read them)."""
    audit = _audit(store)
    with store.write() as conn:
        store.execute_at_commit(conn, _ADD_MESSAGES, [_message("queued first")])
        conn.execute(_ADD_MESSAGES, _message("at once"))
        store.execute_at_commit(conn, _ADD_MESSAGES, [_message("queued second"), _message("queued third")])
        audit.append(conn, [AuditEvent("turn", "alice", "answered", None, "c1", "t1", "api")])
    said = [text for text, _ in _said(store)]
    assert sorted(said) == ["at once", "queued first", "queued second", "queued third"]
    assert [text for text in said if text.startswith("queued")] == ["queued first", "queued second", "queued third"]
    verified = audit.verify()
    assert verified.ok and verified.count == 1


def test_a_queued_write_that_fails_fails_the_transaction_and_leaves_nothing(store: Store) -> None:
    """A key already taken: the error is SQLAlchemy's, as for a statement sent at once, and nothing of the
    transaction stays (its other writes, its audit records); the store goes on working."""
    audit = _audit(store)
    with pytest.raises(IntegrityError), store.write() as conn:
        conn.execute(_ADD_MESSAGES, _message("sent at once"))
        store.execute_at_commit(conn, _ADD_MESSAGES, [_message("queued")])
        audit.append(conn, [AuditEvent("turn", "alice", "answered", None, "c1", "t1", "api")])
        store.execute_at_commit(conn, schema.conversations.insert(), [{
            "id": "c1", "user_id": "bob", "channel": "api", "created_at": NOW, "updated_at": NOW, "state": {}}])
    assert _said(store) == [] and audit.verify().count == 0
    with store.write() as conn:
        store.execute_at_commit(conn, _ADD_MESSAGES, [_message("after")])
    assert _said(store) == [("after", None)]


def test_an_exception_in_the_body_sends_nothing_queued(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as conn:
        store.execute_at_commit(conn, _ADD_MESSAGES, [_message("never")])
        raise RuntimeError("the caller changed its mind")
    assert _said(store) == []


def test_a_write_with_nothing_to_send_sends_nothing(store: Store) -> None:
    with store.write() as conn:
        store.execute_at_commit(conn, _ADD_MESSAGES, [])
    with store.write() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    assert _said(store) == []
