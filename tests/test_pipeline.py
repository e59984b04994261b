"""The pipeline end to end on the demo workspace, in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sayso import TurnStatus

from .conftest import pipeline_for


def crm(root: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / "systems" / "crm.db") as conn:
        return conn.execute(sql).fetchall()


def stage(root: Path, deal: str) -> str:
    return str(crm(root, f"select stage from deals where id = '{deal}'")[0][0])


def count(root: Path, system: str, table: str) -> int:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])


def test_read_answers_with_records(demo_root: Path) -> None:
    result = pipeline_for(demo_root).do(
        "alice", "crm.find_deals", {"owner": "alice", "closing_after": "2026-11-25", "closing_before": "2026-12-25"}
    )
    assert result.status is TurnStatus.ANSWERED
    assert [r["id"] for r in result.steps[0].records or []] == ["D-101"]


def test_medium_risk_executes_and_shows_before_after(demo_root: Path) -> None:
    result = pipeline_for(demo_root).do("alice", "crm.update_deal", {"deal": "Brightwater", "stage": "negotiation"})
    assert result.status is TurnStatus.EXECUTED, result.reply
    assert "proposal -> negotiation" in result.reply
    assert result.steps[0].args["deal"] == "D-101"
    assert stage(demo_root, "D-101") == "negotiation"


def test_denied_changes_nothing_and_names_rule(demo_root: Path) -> None:
    result = pipeline_for(demo_root).do("alice", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert result.status is TurnStatus.DENIED
    assert result.rule == "rule-4-ae-close"
    assert "carol" in result.reply
    assert stage(demo_root, "D-102") == "negotiation"


def test_high_risk_needs_confirmation_then_runs_once(demo_root: Path) -> None:
    pipeline = pipeline_for(demo_root, "carol")
    asked = pipeline.do("carol", "crm.close_deal", {"deal": "Kestrel Aerospace Platform", "outcome": "won"})
    assert asked.status is TurnStatus.NEEDS_CONFIRMATION
    assert asked.confirmation is not None
    assert "negotiation -> closed_won" in asked.reply and "240000" in asked.reply
    assert stage(demo_root, "D-102") == "negotiation"
    assert [c.id for c in pipeline.pending("carol")] == [asked.confirmation["id"]]
    done = pipeline.confirm("carol", asked.confirmation["id"])
    assert done.status is TurnStatus.EXECUTED, done.reply
    assert stage(demo_root, "D-102") == "closed_won"
    again = pipeline.confirm("carol", asked.confirmation["id"])
    assert again.status is TurnStatus.ERROR and again.error and again.error["code"] == "confirmation_used"
    assert pipeline.pending("carol") == []


def test_confirmation_only_by_its_approver(demo_root: Path) -> None:
    asked = pipeline_for(demo_root, "carol").do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    other = pipeline_for(demo_root, "ines").confirm("ines", asked.confirmation["id"])
    assert other.status is TurnStatus.ERROR and other.error and other.error["code"] == "confirmation_not_yours"
    assert stage(demo_root, "D-102") == "negotiation"


def test_confirmation_expires(demo_root: Path) -> None:
    asked = pipeline_for(demo_root, "carol").do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    late = pipeline_for(demo_root, "carol", now="2026-11-25T09:16").confirm("carol", asked.confirmation["id"])
    assert late.status is TurnStatus.ERROR and late.error and late.error["code"] == "confirmation_expired"
    assert stage(demo_root, "D-102") == "negotiation"


def test_changed_record_needs_a_new_confirmation(demo_root: Path) -> None:
    carol = pipeline_for(demo_root, "carol")
    asked = carol.do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    moved = carol.do("carol", "crm.update_deal", {"deal": "D-102", "amount": 250000})
    assert moved.status is TurnStatus.EXECUTED
    second = carol.confirm("carol", asked.confirmation["id"])
    assert second.status is TurnStatus.NEEDS_CONFIRMATION
    assert second.confirmation and second.confirmation["id"] != asked.confirmation["id"]
    assert "changed" in second.reply
    assert stage(demo_root, "D-102") == "negotiation"
    assert carol.confirm("carol", second.confirmation["id"]).status is TurnStatus.EXECUTED
    assert stage(demo_root, "D-102") == "closed_won"


def test_cancel_changes_nothing(demo_root: Path) -> None:
    carol = pipeline_for(demo_root, "carol")
    asked = carol.do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    assert carol.cancel("carol", asked.confirmation["id"]).status is TurnStatus.CANCELLED
    assert carol.confirm("carol", asked.confirmation["id"]).status is TurnStatus.ERROR
    assert stage(demo_root, "D-102") == "negotiation"


def test_critical_is_refused_for_everyone(demo_root: Path) -> None:
    for user in ("ines", "carol", "alice"):
        result = pipeline_for(demo_root, user).do(user, "crm.delete", {"record": "D-107"})
        assert result.status is TurnStatus.DENIED
        assert result.rule in ("rule-8-no-delete", "guard-critical")
    assert crm(demo_root, "select count(*) from deals where id = 'D-107'")[0][0] == 1


def test_ambiguous_name_asks(demo_root: Path) -> None:
    result = pipeline_for(demo_root).do("alice", "crm.update_deal", {"deal": "Kestrel", "stage": "proposal"})
    assert result.status is TurnStatus.NEEDS_CLARIFICATION
    assert {o.value for o in result.options or []} == {"D-102", "D-103"}
    assert stage(demo_root, "D-102") == "negotiation" and stage(demo_root, "D-103") == "qualification"


@pytest.mark.parametrize(
    ("user", "action", "args", "code"),
    [
        ("nobody", "crm.get", {"record": "D-101"}, "unknown_user"),
        ("alice", "crm.nope", {}, "unknown_action"),
        ("alice", "crm.update_deal", {"deal": "D-101", "stage": "sideways"}, "invalid_arguments"),
        ("alice", "crm.update_deal", {"deal": "D-999", "stage": "proposal"}, "unknown_record"),
        ("alice", "crm.update_deal", ["not", "an", "object"], "invalid_arguments"),
        ("alice", "crm.log_note", {"record": "D-101", "text": "x" * 70000}, "input_too_large"),
        ("alice", "chat.send", {"to": "#nowhere", "text": "hi"}, "unknown_record"),
        ("alice", "tickets.create", {"title": "x", "assignee": "zed"}, "unknown_user"),
    ],
)
def test_bad_input_is_an_error_and_changes_nothing(sqlite_root: Path, user: str, action: str, args: object,
                                                   code: str) -> None:
    before = crm(sqlite_root, "select id, stage, amount, version from deals order by id")
    result = pipeline_for(sqlite_root).do(user, action, args)
    assert result.status is TurnStatus.ERROR
    assert result.error and result.error["code"] == code
    assert crm(sqlite_root, "select id, stage, amount, version from deals order by id") == before
    assert count(sqlite_root, "crm", "notes") == 0
    assert count(sqlite_root, "chat", "messages") == 0


def test_low_risk_task_carries_who_and_why(demo_root: Path) -> None:
    args = {"title": "Follow up on the Orchid renewal", "assignee": "devi", "due": "2026-12-01",
            "related": "Orchid Renewal"}
    result = pipeline_for(demo_root).do("alice", "tickets.create", args)
    assert result.status is TurnStatus.EXECUTED, result.reply
    key = (result.steps[0].effect or {})["result"]["id"]
    with sqlite3.connect(demo_root / "systems" / "tickets.db") as conn:
        row = conn.execute("select assignee, due, related, description from tickets where id = ?",
                           (key,)).fetchone()
    assert row[0] == "devi" and row[1] == "2026-12-01" and row[2] == "D-104"
    assert "Alice Moreno" in row[3] and result.conversation in row[3]


def test_undo_compensates_last_step(demo_root: Path) -> None:
    alice = pipeline_for(demo_root)
    alice.do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"})
    undone = alice.undo("alice")
    assert undone.status is TurnStatus.EXECUTED, undone.reply
    assert stage(demo_root, "D-101") == "proposal"
    assert alice.undo("alice").status is TurnStatus.NO_ACTION


def test_every_turn_is_audited_and_chain_verifies(demo_root: Path) -> None:
    alice = pipeline_for(demo_root)
    alice.do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"})
    alice.do("alice", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    alice.do("alice", "crm.nope", {})
    rows = alice.audit.list(user="alice")
    events = [(r["event"], r["status"]) for r in rows]
    assert ("effect", "ok") in events
    assert ("decision", "deny") in events
    assert ("error", "error") in events
    assert alice.audit.verify().ok


def test_changed_policy_needs_a_new_confirmation(sqlite_root: Path) -> None:
    asked = pipeline_for(sqlite_root, "carol").do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    rules = sqlite_root / "policies" / "rule-5-sales-manager.cedar"
    rules.write_text(rules.read_text() + "\n// reviewed by ines\n")
    again = pipeline_for(sqlite_root, "carol").confirm("carol", asked.confirmation["id"])
    assert again.status is TurnStatus.NEEDS_CONFIRMATION and "policies changed" in again.reply
    assert stage(sqlite_root, "D-102") == "negotiation"


def test_policy_revoked_after_asking_denies_at_confirmation(sqlite_root: Path) -> None:
    asked = pipeline_for(sqlite_root, "carol").do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    (sqlite_root / "policies" / "rule-5-sales-manager.cedar").unlink()
    again = pipeline_for(sqlite_root, "carol").confirm("carol", asked.confirmation["id"])
    assert again.status is TurnStatus.DENIED
    assert stage(sqlite_root, "D-102") == "negotiation"


def test_workspace_can_make_medium_ask(sqlite_root: Path) -> None:
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text().replace("confirm_medium = false", "confirm_medium = true"))
    result = pipeline_for(sqlite_root).do("alice", "crm.update_deal", {"deal": "D-101", "stage": "negotiation"})
    assert result.status is TurnStatus.NEEDS_CONFIRMATION
    assert stage(sqlite_root, "D-101") == "proposal"


def test_allowing_critical_still_leaves_the_policy_in_charge(sqlite_root: Path) -> None:
    toml = sqlite_root / "sayso.toml"
    toml.write_text(toml.read_text().replace("allow_critical = false", "allow_critical = true"))
    result = pipeline_for(sqlite_root, "ines").do("ines", "crm.delete", {"record": "D-107"})
    assert result.status is TurnStatus.DENIED and result.rule == "rule-8-no-delete"


def test_guard_verdicts() -> None:
    from sayso.catalog import Tier
    from sayso.config import GuardSettings
    from sayso.guard import Guard, Verdict

    guard = Guard(GuardSettings())
    assert [guard.verdict(t) for t in Tier] == [Verdict.RUN, Verdict.RUN, Verdict.SHOW, Verdict.CONFIRM,
                                               Verdict.REFUSE]
    assert guard.plan_verdict([Tier.LOW, Tier.HIGH, Tier.MEDIUM]) is Verdict.CONFIRM
    strict = Guard(GuardSettings(confirm_medium=True, allow_critical=True))
    assert strict.verdict(Tier.MEDIUM) is Verdict.CONFIRM and strict.verdict(Tier.CRITICAL) is Verdict.CONFIRM


def test_confirm_answers_in_the_requests_conversation(sqlite_root: Path) -> None:
    carol = pipeline_for(sqlite_root, "carol")
    asked = carol.do("carol", "crm.close_deal", {"deal": "D-102", "outcome": "won"})
    assert asked.confirmation is not None
    done = carol.confirm("carol", asked.confirmation["id"])
    assert done.conversation == asked.conversation


def test_oversized_message_is_refused(sqlite_root: Path) -> None:
    result = pipeline_for(sqlite_root).do("alice", "chat.send", {"to": "carol", "text": "hi"}, said="x" * 5000)
    assert result.status is TurnStatus.ERROR and result.error and result.error["code"] == "input_too_large"
    assert count(sqlite_root, "chat", "messages") == 0


def test_broken_policy_file_mid_turn_is_an_error_not_a_crash(sqlite_root: Path) -> None:
    (sqlite_root / "policies" / "zz.cedar").write_text("permit(principal, action, resource) when {;\n")
    result = pipeline_for(sqlite_root).do("alice", "crm.get", {"record": "D-101"})
    assert result.status is TurnStatus.ERROR and result.error and result.error["code"] == "workspace_invalid"
    assert "zz.cedar" in result.reply
