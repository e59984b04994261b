"""Standing instructions: set up in chat, listed, changed, cancelled, fired by `sayso tick` with the
pinned clock, exactly once across a crash, late once after downtime, suspended when the creator loses
the right, confirmed at firing when high risk. Effects are counted in the demo systems' own files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from sayso import Workspace
from sayso.clock import parse_time
from sayso.conversation import Chat
from sayso.instructions import Instruction, InstructionBook, Runner
from sayso.instructions.triggers import parse_condition, parse_schedule, parse_when, split_trigger
from sayso.store import schema

from .conftest import _OPEN, NOW, pipeline_for, sayso, sayso_json

FRIDAY_10 = "2026-11-27T10:00"  # no offset: UTC (05:00 in New York)


def chat_as(root: Path, user: str, now: str = NOW) -> Chat:
    return Chat(pipeline_for(root, user, now))


def rows(root: Path, system: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return list(conn.execute(sql, params).fetchall())


def messages_to(root: Path, person: str) -> list[str]:
    return [r[0] for r in rows(root, "chat", 'select text from messages where "to" = ? order by id', person)]


def book(root: Path) -> InstructionBook:
    ws = Workspace.load(root)
    _OPEN.append(ws)
    return InstructionBook(ws.store)


def tick(root: Path, to: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, data = sayso_json(root, "tick", "--to", to, env=env)
    assert code == 0, data
    return data


# --- the demo: "if the Orchid deal hasn't moved by Friday, ping me" ---------------------------------------------


def test_orchid_watch_pings_alice_once_naming_the_deal_and_why(demo_root: Path) -> None:
    chat = chat_as(demo_root, "alice")
    said = chat.say("alice", "if the Orchid deal hasn't moved by Friday, ping me")
    assert said.status.value == "executed", said.reply
    assert "D-104" in said.reply and "Fri Nov 27" in said.reply

    assert tick(demo_root, "2026-11-26T10:00")["fired"] == []  # Thursday: not yet
    assert messages_to(demo_root, "alice") == []
    fired = tick(demo_root, FRIDAY_10)["fired"]
    assert [f["status"] for f in fired] == ["executed"]
    sent = messages_to(demo_root, "alice")
    assert len(sent) == 1
    assert "D-104" in sent[0] and "hasn't moved" in sent[0]
    assert "if the Orchid deal hasn't moved by Friday, ping me" in sent[0]  # why it was sent: her words
    assert tick(demo_root, "2026-11-28T10:00")["fired"] == []  # done: never again
    assert len(messages_to(demo_root, "alice")) == 1

    events = [json.loads(line) for line in sayso(demo_root, "audit", "list", "--json").stdout.splitlines()]
    made = [e for e in events if e["event"] == "instruction" and e["status"] == "created"]
    fired_events = [e for e in events if e["event"] == "instruction" and e["status"] == "fired"]
    assert made and made[0]["detail"]["words"] == "if the Orchid deal hasn't moved by Friday, ping me"
    assert fired_events and fired_events[0]["conversation"] == said.conversation  # the why: its conversation
    assert sayso(demo_root, "audit", "verify").returncode == 0


def test_moving_the_deal_before_friday_means_no_message(sqlite_root: Path) -> None:
    chat = chat_as(sqlite_root, "alice")
    assert chat.say("alice", "if the Orchid deal hasn't moved by Friday, ping me").status.value == "executed"
    moved = pipeline_for(sqlite_root, "devi").do("devi", "crm.update_deal", {"deal": "D-104", "stage": "proposal"})
    assert moved.status.value == "executed", moved.reply  # devi owns D-104
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-104'") == [("proposal",)]
    assert [f["status"] for f in tick(sqlite_root, FRIDAY_10)["fired"]] == ["done"]  # checked, not fired
    assert messages_to(sqlite_root, "alice") == []
    item = book(sqlite_root).of("alice")[0]
    assert item.status == "done" and "moved" in (item.note or "")


# --- in conversation: list, change, cancel -----------------------------------------------------------------------


def test_list_change_and_cancel_in_conversation_and_on_the_command_line(sqlite_root: Path) -> None:
    chat = chat_as(sqlite_root, "alice")
    conversation = chat.new("alice")
    first = chat.say("alice", "if the Orchid deal hasn't moved by Friday, ping me", conversation)
    assert first.status.value == "executed"
    listed = chat.say("alice", "what am I watching?", conversation)
    assert listed.status.value == "answered" and "D-104" in listed.reply
    changed = chat.say("alice", "make it Thursday instead", conversation)
    assert changed.status.value == "executed" and "Thu Nov 26" in changed.reply, changed.reply
    [item] = book(sqlite_root).of("alice", status="active")
    assert item.next_due == "2026-11-26T05:00:00+00:00"  # Thursday 00:00 New York, stored in UTC

    code, data = sayso_json(sqlite_root, "instructions", "list")
    assert code == 0 and [d["id"] for d in data] == [item.id] and data[0]["owner"] == "alice"
    code, shown = sayso_json(sqlite_root, "instructions", "show", item.id)
    assert shown["words"] == "if the Orchid deal hasn't moved by Friday, ping me" and shown["firings"] == []

    stopped = chat.say("alice", "stop the Orchid check", conversation)
    assert stopped.status.value == "executed" and item.id in stopped.reply
    assert book(sqlite_root).of("alice", status="active") == []
    assert tick(sqlite_root, FRIDAY_10)["fired"] == []
    assert messages_to(sqlite_root, "alice") == []


def test_cancel_from_the_command_line_is_the_owners_only(sqlite_root: Path) -> None:
    chat_as(sqlite_root, "alice").say("alice", "tomorrow at 9, tell carol the renewal is signed")
    [item] = book(sqlite_root).of("alice")
    foreign = sayso(sqlite_root, "instructions", "cancel", item.id, "--user", "bob")
    assert foreign.returncode == 2 and "instruction_unknown" in foreign.stderr
    assert sayso(sqlite_root, "instructions", "cancel", item.id, "--user", "alice").returncode == 0
    assert tick(sqlite_root, "2026-11-27T09:00")["fired"] == []
    assert messages_to(sqlite_root, "carol") == []


# --- kinds ----------------------------------------------------------------------------------------------------


def test_delayed_action_fires_at_its_time_once(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "alice").say("alice", "tomorrow at 9, tell carol the renewal is signed")
    assert said.status.value == "executed" and "Thu Nov 26 09:00" in said.reply
    assert tick(sqlite_root, "2026-11-26T13:59")["fired"] == []  # 08:59 in New York
    fired = tick(sqlite_root, "2026-11-26T14:00")["fired"]
    assert [(f["status"], f["late"]) for f in fired] == [("executed", False)]
    assert messages_to(sqlite_root, "carol") == ["the renewal is signed"]
    assert tick(sqlite_root, "2026-11-30T14:00")["fired"] == []
    assert messages_to(sqlite_root, "carol") == ["the renewal is signed"]


def test_recurring_fires_on_time_then_once_late_after_downtime(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "alice").say("alice", "every weekday at 8:30 show me my open deals")
    assert said.status.value == "executed", said.reply
    fired = tick(sqlite_root, "2026-11-26T13:30")["fired"]  # Thursday 08:30 New York, on time
    assert [(f["status"], f["late"]) for f in fired] == [("executed", False)]
    assert len(messages_to(sqlite_root, "alice")) == 1
    # Down from Thursday until Tuesday 10:00: Friday, Monday and Tuesday 08:30 were missed -> one late firing
    fired = tick(sqlite_root, "2026-12-01T15:00")["fired"]
    assert [(f["status"], f["late"], f["scheduled_for"]) for f in fired] == [
        ("executed", True, "2026-12-01T08:30:00-05:00")]
    sent = messages_to(sqlite_root, "alice")
    assert len(sent) == 2 and "late" in sent[1] and "D-101" in sent[1]  # the read's answer is in the message
    [item] = book(sqlite_root).of("alice")
    assert item.next_due == "2026-12-02T13:30:00+00:00"  # Wednesday 08:30 New York, stored in UTC


def test_watch_on_a_ticket_tells_the_account_owner_when_closed(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "sam").say("sam", "when SUP-17 is closed, tell the account owner")
    assert said.status.value == "executed", said.reply
    assert tick(sqlite_root, "2026-11-25T15:00")["fired"] == []
    closed = pipeline_for(sqlite_root, "sam").do("sam", "tickets.update", {"ticket": "SUP-17", "status": "closed"})
    assert closed.status.value == "executed", closed.reply
    fired = tick(sqlite_root, "2026-11-25T15:05")["fired"]
    assert [f["status"] for f in fired] == ["executed"]
    owner = rows(sqlite_root, "crm", "select owner from accounts where name = 'Brightwater Dental'")[0][0]
    sent = messages_to(sqlite_root, owner)
    assert len(sent) == 1 and "SUP-17" in sent[0] and "closed" in sent[0]
    assert tick(sqlite_root, "2026-11-25T16:00")["fired"] == []


def test_watch_over_any_invoice_going_overdue_tells_finance_by_email(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "fiona").say("fiona", "if an invoice goes overdue, let me know")
    assert said.status.value == "executed", said.reply
    assert tick(sqlite_root, "2026-11-25T15:00")["fired"] == []  # the ones overdue already are not news
    fresh = rows(sqlite_root, "billing", "select id from invoices where status != 'overdue' order by id")[0][0]
    with sqlite3.connect(sqlite_root / "systems" / "billing.db") as conn:  # the billing system marks it overdue
        conn.execute("update invoices set status = 'overdue' where id = ?", (fresh,))
    fired = tick(sqlite_root, "2026-11-25T15:05")["fired"]
    assert [f["status"] for f in fired] == ["executed"]
    mails = rows(sqlite_root, "email", "select body from emails where \"to\" like '%fiona@%'")
    assert len(mails) == 1 and fresh in mails[0][0]  # fiona lives in email (directory: notify email)
    assert tick(sqlite_root, "2026-11-25T15:10")["fired"] == []
    assert len(rows(sqlite_root, "email", "select id from emails")) == 1


def test_follow_up_runs_after_the_credit_note_is_issued(sqlite_root: Path) -> None:
    chat = chat_as(sqlite_root, "fiona")
    conversation = chat.new("fiona")
    set_up = chat.say("fiona", "after the credit note is issued, open a FIN task to reconcile it", conversation)
    assert set_up.status.value == "executed", set_up.reply
    asked = chat.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the outage", conversation)
    assert asked.status.value == "needs_confirmation"
    assert tick(sqlite_root, "2026-11-25T15:00")["fired"] == []  # not issued yet
    assert chat.say("fiona", "yes", conversation).status.value == "executed"
    fired = tick(sqlite_root, "2026-11-25T15:05")["fired"]
    assert [f["status"] for f in fired] == ["executed"]
    tasks = rows(sqlite_root, "tickets", "select title from tickets where project = 'FIN' and title like '%econcil%'")
    assert len(tasks) == 1
    assert tick(sqlite_root, "2026-11-25T15:10")["fired"] == []


# --- safe when it fires --------------------------------------------------------------------------------------


def test_high_risk_action_asks_the_creator_to_confirm_when_it_fires(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "carol").say("carol", "tomorrow at 9, close D-102 as won")
    assert said.status.value == "executed" and "confirm" in said.reply, said.reply
    fired = tick(sqlite_root, "2026-11-26T14:00")["fired"]
    assert [f["status"] for f in fired] == ["needs_confirmation"]
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]
    code, waiting = sayso_json(sqlite_root, "pending", "--user", "carol", "--now", "2026-11-26T09:01")
    assert len(waiting) == 1
    told = messages_to(sqlite_root, "carol")
    assert len(told) == 1 and waiting[0]["id"] in told[0]
    done = sayso(sqlite_root, "confirm", waiting[0]["id"], "--user", "carol", "--now", "2026-11-26T09:01")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-102'") == [("closed_won",)]


def test_creator_who_lost_the_right_is_suspended_and_told(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "fiona").say("fiona", "every day at 9 show me the overdue invoices")
    assert said.status.value == "executed", said.reply
    directory = sqlite_root / "directory.yaml"
    data = yaml.safe_load(directory.read_text())
    for person in data["people"]:
        if person["id"] == "fiona":
            person["role"] = "account_executive"
    directory.write_text(yaml.safe_dump(data))
    fired = tick(sqlite_root, "2026-11-26T09:00")["fired"]  # 09:00 in London
    assert [f["status"] for f in fired] == ["suspended"]
    [item] = book(sqlite_root).of("fiona")
    assert item.status == "suspended" and item.note
    mails = rows(sqlite_root, "email", "select subject, body from emails")
    assert len(mails) == 1 and "suspended" in mails[0][1] and item.id in mails[0][1]
    assert tick(sqlite_root, "2026-11-27T09:00")["fired"] == []


def test_a_crash_during_a_firing_leaves_one_message(sqlite_root: Path) -> None:
    chat_as(sqlite_root, "alice").say("alice", "if the Orchid deal hasn't moved by Friday, ping me")
    crashed = sayso(sqlite_root, "tick", "--to", FRIDAY_10, env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137, crashed.stderr
    assert len(messages_to(sqlite_root, "alice")) == 1  # the effect happened; sayso did not record it
    fired = tick(sqlite_root, FRIDAY_10)["fired"]
    assert [f["status"] for f in fired] == ["executed"]
    assert len(messages_to(sqlite_root, "alice")) == 1  # looked up, not sent again
    assert tick(sqlite_root, "2026-11-28T10:00")["fired"] == []
    assert len(messages_to(sqlite_root, "alice")) == 1
    code, shown = sayso_json(sqlite_root, "instructions", "show", book(sqlite_root).of("alice")[0].id)
    assert [f["status"] for f in shown["firings"]] == ["executed"]


# --- bad input: refused at creation, nothing stored -------------------------------------------------------------


@pytest.mark.parametrize(("user", "text", "status", "says"), [
    ("alice", "yesterday at 9, tell carol the renewal is signed", "error", "passed"),
    ("alice", "on the 32nd, post the pipeline in #sales-east", "error", "day 32"),
    ("alice", "if the Orchid deal hasn't moved by Monday last week, ping me", "error", "passed"),
    ("alice", "when INV-2042 is paid, ping me", "error", "could not find 'INV-2042'"),  # hidden: as if missing
    ("bob", "tomorrow at 9, issue a credit note of 500 to Orchid Pharma for the outage", "denied", "rule"),
    ("ines", "tomorrow at 9, delete D-104", "error", "critical"),
    ("alice", "if the Nonexistent deal hasn't moved by Friday, ping me", "error", "could not find"),
])
def test_bad_instructions_are_refused_and_nothing_is_stored(sqlite_root: Path, user: str, text: str, status: str,
                                                            says: str) -> None:
    result = chat_as(sqlite_root, user).say(user, text)
    assert result.status.value == status, result.reply
    assert says in result.reply or (result.rule and says == "rule"), result.reply
    assert book(sqlite_root).of() == []


# --- the trigger grammar -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "request_words"), [
    ("every Monday at 8 send me the overdue invoices", "every", "send me the overdue invoices"),
    ("if the Orchid deal hasn't moved by Friday, ping me", "watch", "ping me"),
    ("when SUP-17 is closed, tell the account owner", "watch", "tell the account owner"),
    ("on the 1st, post the pipeline in #sales-east", "every", "post the pipeline in #sales-east"),
    ("after the credit note is issued, open a FIN task to reconcile it", "after", "open a FIN task to reconcile it"),
    ("tomorrow at 9, post in #sales-east that Orchid renewed", "at", "post in #sales-east that Orchid renewed"),
    ("ping me if D-104 hasn't moved by Friday", "watch", "ping me"),
])
def test_trigger_clauses_split_from_the_request(text: str, kind: str, request_words: str) -> None:
    split = split_trigger(text)
    assert split is not None and split.kind == kind and split.request == request_words


@pytest.mark.parametrize("text", [
    "remind me Friday at 9 to call Priya", "move the Brightwater deal to negotiation", "show my open deals",
    "let carol know the deal slipped", "what is overdue?",
])
def test_ordinary_requests_are_not_instructions(text: str) -> None:
    assert split_trigger(text) is None


def test_schedules_conditions_and_times() -> None:
    monday = parse_schedule("every Monday at 8", "America/New_York")
    assert (monday.freq, monday.weekdays, monday.hour) == ("weekly", [0], 8)
    now = parse_time("2026-11-25T09:00", "America/New_York")
    assert monday.next_after(now).isoformat() == "2026-11-30T08:00:00-05:00"
    first = parse_schedule("on the 1st", "UTC")
    assert (first.freq, first.monthday, first.hour) == ("monthly", 1, 9)
    assert parse_schedule("each weekday at 5pm", "UTC").weekdays == [0, 1, 2, 3, 4]
    cond = parse_condition("the Orchid deal hasn't moved by Friday")
    assert (cond.subject, cond.mode, cond.deadline) == ("the Orchid deal", "unchanged", "Friday")
    assert parse_condition("SUP-17 is closed").mode == "becomes"
    assert parse_condition("an invoice goes overdue").state == "overdue"
    assert parse_when("in 2 hours", now, "America/New_York") == parse_time("2026-11-25T11:00", "America/New_York")
    with pytest.raises(Exception, match="day 32"):
        parse_schedule("on the 32nd", "UTC")
    runner_due = Runner  # the runner is importable from the package
    assert runner_due.__name__ == "Runner"


def test_a_model_proposed_write_is_confirmed_when_it_fires(sqlite_root: Path) -> None:
    """A standing instruction a model interpreted keeps the chat's rule: its writes from medium risk up are
    confirmed by the person, at firing time."""
    ws = Workspace.load(sqlite_root)
    _OPEN.append(ws)
    at = parse_time("2026-11-26T09:00", "America/New_York")
    item = Instruction(
        id="in_model000001", owner="alice", conversation="c_model", kind="at", words="tomorrow at 9, move D-101 on",
        summary="move D-101 to negotiation", trigger={"at": at.isoformat(), "confirm_from": "medium"},
        action="crm.update_deal", args={"deal": "D-101", "stage": "negotiation"}, next_due=at.isoformat(),
        created_at="2026-11-25T09:00:00-05:00", updated_at="2026-11-25T09:00:00-05:00")
    InstructionBook(ws.store).add(item)
    fired = tick(sqlite_root, "2026-11-26T14:05")["fired"]
    assert [f["status"] for f in fired] == ["needs_confirmation"]
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-101'") == [("proposal",)]
    assert len(messages_to(sqlite_root, "alice")) == 1  # told, with the confirmation to give


def test_next_due_is_stored_in_utc_so_the_database_filters_due_work(sqlite_root: Path) -> None:
    said = chat_as(sqlite_root, "alice").say("alice", "every weekday at 8:30 show me my open deals")
    assert said.status.value == "executed", said.reply
    instructions = book(sqlite_root)
    [item] = instructions.of("alice")
    assert item.next_due == "2026-11-26T13:30:00+00:00"  # Thursday 08:30 New York
    assert instructions.due(parse_time("2026-11-26T13:29")) == []
    assert [i.id for i in instructions.due(parse_time("2026-11-26T08:30-05:00"))] == [item.id]
    with instructions.store.write() as conn:  # as written before times were stored in UTC
        conn.execute(update(schema.instructions).values(next_due="2026-11-26T08:30:00-05:00"))
    assert instructions.due(parse_time("2026-11-26T13:29")) == []
    assert [i.id for i in instructions.due(parse_time("2026-11-26T13:30"))] == [item.id]
