"""Undo: it takes back the step executed last (a sequence, never a clock), once however many ask at the
same time, and never over a change made since; the effects are counted in the demo systems' own files."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select, text, update
from typer.testing import CliRunner, Result

import sayso.store
from sayso import Pipeline, TurnStatus, Workspace
from sayso.cli import app
from sayso.executor import Executor
from sayso.serve import create_app
from sayso.store import Store
from sayso.store.schema import audit, plans, steps

from .conftest import _OPEN, NOW, _create_pg_database, _drop_pg_database, pipeline_for
from .servers import serving


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


def cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``sayso ARGS`` in-process (Typer's runner); the workspaces it opens are closed when the test ends."""
    load = Workspace.load

    def tracked(root: Path) -> Workspace:
        ws = load(root)
        _OPEN.append(ws)
        return ws

    with monkeypatch.context() as patch:
        patch.setattr(Workspace, "load", staticmethod(tracked))
        return CliRunner().invoke(app, list(args))


class _Crash(BaseException):
    """The process dies right after an effect (``SAYSO_FAULT=crash-after-effect``), in-process."""


def _crash(status: int) -> None:
    raise _Crash


def crash_after_effect(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, action: str,
                       args: dict[str, Any]) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("SAYSO_FAULT", "crash-after-effect")
        patch.setattr("sayso.executor.os._exit", _crash)
        with pytest.raises(_Crash):
            pipeline.do("alice", action, args)


@pytest.mark.parametrize("damage", ["not JSON", "wrong shape", "a system no longer configured"])
def test_recovery_and_serve_skip_a_plan_they_cannot_read_and_finish_the_others(
    demo_root: Path, backend: str, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    if damage == "not JSON" and backend == "postgresql":
        pytest.skip("PostgreSQL's json type refuses text that is not JSON")
    alice = pipeline_for(demo_root)
    crash_after_effect(alice, monkeypatch, "chat.send", {"to": "carol", "text": "the Orchid deal slipped"})
    crash_after_effect(alice, monkeypatch, "calendar.remind", {"at": "2026-11-27T09:00", "text": "call Priya"})
    with alice.ws.store.write() as conn:  # the crashed holder's leases run out; one payload is damaged
        conn.execute(update(plans).values(lease_until=0.0))
        damaged = conn.execute(select(plans.c.id).where(plans.c.payload.is_not(None))
                               .order_by(plans.c.created_at, plans.c.id)).scalars().all()
        payloads = {i: conn.execute(select(plans.c.payload).where(plans.c.id == i)).scalar_one() for i in damaged}
        remind = next(i for i, p in payloads.items() if p["steps"][0]["action"] == "calendar.remind")
        moved = {**payloads[remind], "steps": [{**payloads[remind]["steps"][0], "connector": "nowhere"}]}
        bad = {"not JSON": "{not json", "wrong shape": json.dumps({"id": remind, "steps": "calendar.remind"}),
               "a system no longer configured": json.dumps(moved)}[damage]
        conn.execute(text("update plans set payload = :bad where id = :id"), {"bad": bad, "id": remind})
    alice.ws.close()
    assert target(demo_root, "calendar", "select count(*) from events") == [(1,)]

    done = cli(monkeypatch, "recover", "--workspace", str(demo_root), "--now", NOW, "--json")
    assert done.exit_code == 0, done.output
    recovered = json.loads(done.stdout)["recovered"]
    assert [r["status"] for r in recovered] == ["executed", "failed"], recovered
    assert recovered[1]["error"]["code"] == "plan_unreadable"
    assert f"plan {remind} skipped" in recovered[1]["reply"]
    assert target(demo_root, "chat", "select count(*) from messages") == [(1,)]  # finished, not repeated
    assert target(demo_root, "calendar", "select count(*) from events") == [(1,)]  # left as it was

    again = cli(monkeypatch, "recover", "--workspace", str(demo_root), "--now", NOW)
    assert again.exit_code == 0 and "Recovered 0 plan(s)." in again.stdout, again.output
    with serving(create_app(demo_root, now=NOW)) as url:  # the server starts
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    check = pipeline_for(demo_root)
    errors = [r for r in check.audit.list() if r["event"] == "error" and r["detail"].get("plan") == remind]
    assert len(errors) == 1 and errors[0]["detail"]["code"] == "plan_unreadable"  # audited once, not per start
    with check.ws.store.read() as conn:
        assert conn.execute(select(plans.c.status).where(plans.c.id == remind)).scalar_one() == "unreadable"
    assert check.audit.verify().ok


def test_four_undos_at_once_take_effect_once(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pipeline_for(demo_root).do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"}) \
        .status is TurnStatus.EXECUTED
    # Four requests, each with its own workspace (its own connections, as four processes have), all find
    # the same last step before any of them undoes it.
    people = [pipeline_for(demo_root) for _ in range(4)]
    found = threading.Barrier(len(people), timeout=120)
    last_undoable = Executor.last_undoable

    def in_step(self: Executor, actor: str, undoable: Callable[[str], bool]) -> Any:
        row = last_undoable(self, actor, undoable)
        found.wait()
        return row

    monkeypatch.setattr(Executor, "last_undoable", in_step)
    with ThreadPoolExecutor(len(people)) as pool:
        results = list(pool.map(lambda p: p.undo("alice"), people))

    statuses = sorted(r.status.value for r in results)
    assert statuses == ["executed", "no_action", "no_action", "no_action"], [r.reply for r in results]
    assert all("already undone" in r.reply for r in results if r.status is TurnStatus.NO_ACTION)
    assert deal(demo_root, "D-101") == ("proposal", 48000, 3)  # one update, one undo
    assert target(demo_root, "crm", "select count(*) from effects where operation = 'undo:update_deal'") == [(1,)]
    check = pipeline_for(demo_root)
    undone = [r for r in check.audit.list(user="alice") if r["event"] == "effect" and r["status"] == "undone"]
    assert len(undone) == 1
    turns = [r["status"] for r in check.audit.list(user="alice") if r["event"] == "turn" and r["status"] != "received"]
    assert sorted(turns) == ["executed", "executed", "no_action", "no_action", "no_action"]  # the update, then 4


def edit(root: Path, system: str, sql: str) -> None:
    """Someone changes a record in the system itself, outside sayso (its version moves on, as on any write)."""
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        conn.execute(sql)


@pytest.mark.parametrize(("action", "args", "system", "change", "check", "expected"), [
    ("crm.update_deal", {"deal": "D-101", "stage": "negotiation"}, "crm",
     "update deals set amount = 50000, version = version + 1 where id = 'D-101'",
     "select stage, amount from deals where id = 'D-101'", [("negotiation", 50000)]),
    ("tickets.create", {"title": "Follow up", "assignee": "devi", "due": "2026-12-01"}, "tickets",
     "update tickets set priority = 'high', version = version + 1 where id = '{id}'",
     "select status, priority from tickets where id = '{id}'", [("open", "high")]),
], ids=["update, then another field", "create, then edited"])
def test_undo_refuses_when_the_record_changed_since_in_any_field(
    demo_root: Path, monkeypatch: pytest.MonkeyPatch, action: str, args: dict[str, Any], system: str,
    change: str, check: str, expected: list[tuple[object, ...]],
) -> None:
    done = pipeline_for(demo_root).do("alice", action, args)
    assert done.status is TurnStatus.EXECUTED, done.reply
    made = str((done.steps[0].effect or {})["result"]["id"])
    edit(demo_root, system, change.format(id=made))
    before = target(demo_root, system, check.format(id=made))
    assert before == expected

    refused = cli(monkeypatch, "undo", "--user", "alice", "--workspace", str(demo_root), "--now", NOW, "--json")
    assert refused.exit_code == 2, refused.output
    out = json.loads(refused.stdout)
    assert out["status"] == "error" and out["error"]["code"] == "record_changed", out
    assert f"{made} changed since" in out["reply"] and "not undone" in out["reply"]
    assert target(demo_root, system, check.format(id=made)) == before  # nothing changed
    assert target(demo_root, system, "select count(*) from effects where operation like 'undo:%'") == [(0,)]
    check_audit = pipeline_for(demo_root).audit.list(user="alice")
    assert not [r for r in check_audit if r["event"] == "effect" and r["status"] == "undone"]
    assert [r["detail"]["code"] for r in check_audit if r["event"] == "error"] == ["record_changed"]


def test_undos_one_after_another_take_a_record_back_step_by_step(demo_root: Path) -> None:
    alice = pipeline_for(demo_root)
    before = deal(demo_root, "D-101")
    alice.do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"})
    alice.do("alice", "crm.update_deal", {"deal": "D-101", "amount": 50000})
    assert alice.undo("alice").status is TurnStatus.EXECUTED
    assert deal(demo_root, "D-101")[:2] == ("negotiation", before[1])
    second = alice.undo("alice")  # what changed since was itself undone: the record is as the step left it
    assert second.status is TurnStatus.EXECUTED, second.reply
    assert deal(demo_root, "D-101")[:2] == before[:2]

    alice.do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"})
    carol = pipeline_for(demo_root, "carol")  # others work on the deal meanwhile
    assert carol.do("carol", "crm.log_note", {"record": "D-101", "text": "called"}).status is TurnStatus.EXECUTED
    edit(demo_root, "crm", "update deals set close_date = '2027-01-15', version = version + 1 where id = 'D-101'")
    edit(demo_root, "crm", "update deals set close_date = '2026-12-15', version = version + 1 where id = 'D-101'")
    refused = alice.undo("alice")  # edited outside sayso, even if back to the same values: changed since
    assert refused.status is TurnStatus.ERROR and "changed since" in refused.reply, refused.reply
