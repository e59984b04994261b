"""Undo: it takes back the step executed last (a sequence, never a clock), once however many ask at the
same time, and never over a change made since; the effects are counted in the demo systems' own files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select, update

import sayso.store
from sayso import TurnStatus
from sayso.store import Store
from sayso.store.schema import audit, steps

from .conftest import _create_pg_database, _drop_pg_database, pipeline_for


def target(root: Path, system: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def deal(root: Path, deal_id: str) -> tuple[object, ...]:
    return target(root, "crm", f"select stage, amount, version from deals where id = '{deal_id}'")[0]


def reminders(root: Path) -> int:
    return int(target(root, "calendar", "select count(*) from events where kind = 'reminder'")[0][0])


def test_undo_takes_back_the_step_executed_last_when_times_tie(demo_root: Path) -> None:
    alice = pipeline_for(demo_root)  # a pinned clock: every step has the same time
    before = deal(demo_root, "D-101")
    assert alice.do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"}).status \
        is TurnStatus.EXECUTED
    assert alice.do("alice", "calendar.remind", {"at": "2026-11-27T09:00", "text": "call Priya"}).status \
        is TurnStatus.EXECUTED
    assert alice.do("alice", "crm.log_note", {"record": "D-101", "text": "called Priya"}).status \
        is TurnStatus.EXECUTED

    first = alice.undo("alice")
    assert first.status is TurnStatus.EXECUTED and first.steps[0].action == "crm.log_note", first.reply
    assert target(demo_root, "crm", "select count(*) from notes") == [(0,)]
    assert reminders(demo_root) == 1 and deal(demo_root, "D-101")[0] == "negotiation"

    second = alice.undo("alice")
    assert second.steps[0].action == "calendar.remind", second.reply
    assert reminders(demo_root) == 0 and deal(demo_root, "D-101")[0] == "negotiation"

    third = alice.undo("alice")
    assert third.steps[0].action == "crm.update_deal", third.reply
    assert deal(demo_root, "D-101")[:2] == before[:2]
    assert alice.undo("alice").status is TurnStatus.NO_ACTION


def test_the_migration_numbers_earlier_steps_in_the_order_of_their_effects(tmp_path: Path, backend: str) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}" if backend == "sqlite" else _create_pg_database()
    try:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        config = Config()
        config.set_main_option("script_location", str(Path(sayso.store.__file__).parent / "migrations"))
        at = "2026-11-25T14:00:00+00:00"  # one time for all: only the audit chain knows their order
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0005")
            conn.execute(steps.insert(), [
                {"key": key, "plan_id": f"pl_{key}", "idx": 0, "actor": "alice", "action": "crm.update_deal",
                 "status": status, "at": at}
                for key, status in (("sk_a", "executed"), ("sk_b", "undone"), ("sk_c", "failed"))])
            records = [("effect", "ok", {"idempotency_key": "sk_b"}), ("call", "ok", {"idempotency_key": "sk_a"}),
                       ("effect", "ok", {"idempotency_key": "sk_a"}),
                       ("effect", "undone", {"idempotency_key": "sk_b:undo", "undoes": "sk_b"})]
            conn.execute(audit.insert(), [
                {"seq": n, "id": f"au_{n}", "at": at, "actor": "alice", "channel": "cli", "event": event,
                 "action": "crm.update_deal", "status": status, "detail": detail, "prev_hash": "", "hash": ""}
                for n, (event, status, detail) in enumerate(records, start=1)])
        engine.dispose()

        store = Store.open(url)
        try:
            with store.write() as conn:
                conn.execute(steps.insert().values(key="sk_d", plan_id="pl_d", idx=0, actor="alice",
                                                   action="crm.update_deal", status="pending"))
                conn.execute(update(steps).where(steps.c.key == "sk_d").values(seq=store.next_step_seq()))
            with store.read() as conn:
                numbered = {row.key: row.seq for row in conn.execute(select(steps.c.key, steps.c.seq))}
        finally:
            store.dispose()
        assert numbered == {"sk_b": 1, "sk_a": 2, "sk_c": None, "sk_d": 3}
    finally:
        if backend == "postgresql":
            _drop_pg_database(url)
