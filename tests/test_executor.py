"""Executor guarantees that need a closer look: leases, unknown outcomes, multi-step plans."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from sayso import Connector, Effect, Guarantee, TurnStatus
from sayso.connectors import SystemContext, registry
from sayso.errors import OutcomeUnknown
from sayso.pipeline import Request
from sayso.store.schema import plans

from .conftest import NOW, pipeline_for, sayso, sayso_json


def messages(root: Path) -> int:
    with sqlite3.connect(root / "systems" / "chat.db") as conn:
        return int(conn.execute("select count(*) from messages").fetchone()[0])


def test_recovery_leaves_a_plan_held_by_a_live_process(sqlite_root: Path) -> None:
    crashed = sayso(sqlite_root, "do", "--user", "alice", "--action", "chat.send", "--args",
                    '{"to": "carol", "text": "hi"}', env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket
        import time

        with sqlite3.connect(sqlite_root / "state.db") as conn:
            conn.execute("update plans set lease_owner = ?, lease_until = ? where status = 'running'",
                         (f"{socket.gethostname()}:{sleeper.pid}:live", time.time() + 600))
        code, out = sayso_json(sqlite_root, "recover")
        assert out["recovered"] == []  # a live process holds it: hands off
        with sqlite3.connect(sqlite_root / "state.db") as conn:
            assert conn.execute("select count(*) from plans where status = 'running'").fetchone()[0] == 1
    finally:
        sleeper.kill()
        sleeper.wait()
    code, out = sayso_json(sqlite_root, "recover")  # its holder died: recovery takes it, once
    assert len(out["recovered"]) == 1 and out["recovered"][0]["status"] == "executed"
    assert messages(sqlite_root) == 1


class _Crash(BaseException):
    pass


class FireAndForget(Connector):
    """A system that cannot be asked whether a write happened (standing in for the chat system)."""

    guarantee = Guarantee.AT_LEAST_ONCE
    record_types = frozenset({"Message"})
    sent: list[str] = []

    def execute(self, operation: str, args: dict[str, Any], *, key: str,
                origin: dict[str, Any] | None = None) -> Effect:
        self.sent.append(key)
        return Effect(key=key, operation=operation, summary="sent")


def _fire_and_forget(name: str, settings: Mapping[str, Any], context: SystemContext) -> Connector:
    return FireAndForget()


def test_unknown_outcome_is_surfaced_not_repeated(sqlite_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.add("test.fire_and_forget", _fire_and_forget)
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text().replace('kind = "demo.chat"', 'kind = "test.fire_and_forget"'))
    FireAndForget.sent = []
    pipeline = pipeline_for(sqlite_root)

    def crash(status: int) -> None:
        raise _Crash

    monkeypatch.setenv("SAYSO_FAULT", "crash-after-effect")
    monkeypatch.setattr("sayso.executor.os._exit", crash)
    with pytest.raises(_Crash):
        pipeline.do("alice", "chat.send", {"to": "carol", "text": "hello"})
    monkeypatch.delenv("SAYSO_FAULT")
    with pipeline.ws.store.write() as conn:  # the crashed holder's lease runs out
        conn.execute(update(plans).values(lease_until=0.0))
    results = pipeline.recover()
    assert len(results) == 1
    assert results[0].steps[0].status.value == "outcome_unknown"
    assert results[0].status is TurnStatus.FAILED
    assert len(FireAndForget.sent) == 1  # not silently repeated
    rows = pipeline.audit.list(action="chat.send")
    assert any(r["event"] == "call" and r["status"] == "outcome_unknown" for r in rows)
    with pipeline.ws.store.read() as conn:
        assert conn.execute(select(plans.c.status)).scalar_one() == "failed"


class CutOff(Connector):
    """A system whose answer is lost after the write was sent (a dropped connection; standing in for chat)."""

    guarantee = Guarantee.AT_LEAST_ONCE
    record_types = frozenset({"Message"})
    sent: list[str] = []

    def execute(self, operation: str, args: dict[str, Any], *, key: str,
                origin: dict[str, Any] | None = None) -> Effect:
        self.sent.append(key)
        raise OutcomeUnknown("the connection dropped after the send; it may or may not have happened")


def test_a_write_cut_off_after_sending_is_outcome_unknown_and_never_retried(sqlite_root: Path) -> None:
    registry.add("test.cut_off", lambda name, settings, context: CutOff())
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text().replace('kind = "demo.chat"', 'kind = "test.cut_off"'))
    CutOff.sent = []
    pipeline = pipeline_for(sqlite_root)
    result = pipeline.do("alice", "chat.send", {"to": "carol", "text": "hello"})
    assert result.status is TurnStatus.FAILED
    assert result.steps[0].status.value == "outcome_unknown"
    assert "may or may not" in (result.steps[0].error or "")
    assert pipeline.recover() == []  # the plan is finished: nothing is retried
    assert len(CutOff.sent) == 1
    rows = pipeline.audit.list(action="chat.send")
    assert any(r["event"] == "call" and r["status"] == "outcome_unknown" for r in rows)


def test_multi_step_plan_is_confirmed_once_as_a_whole(sqlite_root: Path) -> None:
    pipeline = pipeline_for(sqlite_root, "carol")
    from sayso.pipeline import _Turn

    turn = _Turn(pipeline.ws.directory.get("carol"), "c_multi", "t_multi", "cli", {"text": "two things"})
    result = pipeline.run_plan(turn, [
        Request("crm.update_deal", {"deal": "D-106", "stage": "negotiation"}),
        Request("crm.close_deal", {"deal": "D-102", "outcome": "won"}),
    ])
    assert result.status is TurnStatus.NEEDS_CONFIRMATION
    assert result.confirmation is not None
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as conn:
        assert conn.execute("select stage from deals where id = 'D-106'").fetchone()[0] == "proposal"
    done = pipeline.confirm("carol", result.confirmation["id"])
    assert done.status is TurnStatus.EXECUTED, done.reply
    assert [s.status.value for s in done.steps] == ["executed", "executed"]
    with sqlite3.connect(sqlite_root / "systems" / "crm.db") as conn:
        stages = dict(conn.execute("select id, stage from deals where id in ('D-102', 'D-106')").fetchall())
    assert stages == {"D-102": "closed_won", "D-106": "negotiation"}


def test_a_denied_step_stops_the_whole_plan(sqlite_root: Path) -> None:
    pipeline = pipeline_for(sqlite_root)
    from sayso.pipeline import _Turn

    turn = _Turn(pipeline.ws.directory.get("alice"), "c_multi", "t_multi2", "cli", {"text": "two things"})
    result = pipeline.run_plan(turn, [
        Request("chat.send", {"to": "carol", "text": "closing it"}),
        Request("crm.close_deal", {"deal": "D-102", "outcome": "won"}),
    ])
    assert result.status is TurnStatus.DENIED
    assert messages(sqlite_root) == 0


def test_medium_risk_crash_recovers_once(sqlite_root: Path) -> None:
    crashed = sayso(sqlite_root, "do", "--user", "alice", "--action", "chat.send", "--args",
                    json.dumps({"to": "#sales-east", "text": "posting"}), "--now", NOW,
                    env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137
    assert messages(sqlite_root) == 1
    code, out = sayso_json(sqlite_root, "recover")
    assert out["recovered"][0]["steps"][0]["status"] == "executed"
    assert messages(sqlite_root) == 1
