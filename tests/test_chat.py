"""Conversations end to end: the first conversation of the demo, references across
turns, clarifications, confirmations by "yes", context that travels, untrusted
text, and state that survives a restart. Effects are counted in the target systems."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sayso import Workspace
from sayso.conversation import Chat
from sayso.errors import UnknownConversation

from .conftest import _OPEN, NOW, cli, pipeline_for


def chat_for(root: Path, user: str = "alice", now: str = NOW) -> Chat:
    return Chat(pipeline_for(root, user, now))


def rows(root: Path, system: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return conn.execute(sql, params).fetchall()


@pytest.mark.parametrize("text", ["book 30 minutes with carol tomorrow at 3pm",
                                  "book an hour with bob on friday at 10",
                                  "schedule 45 minutes with devi tomorrow at 2pm"])
def test_a_request_that_says_more_than_whom_to_tell_never_takes_its_text_from_the_last_turn(
        sqlite_root: Path, text: str) -> None:
    """Right after a denial (or any turn), "let carol know" sends what was asked and why; a request that gives its
    own details (a start, a length) and lacks only a title asks for it: the last request and its outcome are not
    its title, and nothing is made on that guess."""
    chat = chat_for(sqlite_root, "alice")
    denied = chat.say("alice", "assign a ticket to devi")
    assert denied.status.value == "denied"
    asked = chat.say("alice", text, denied.conversation)
    assert asked.status.value == "needs_clarification" and "title" in asked.reply.lower(), asked.reply
    assert "asked:" not in json.dumps([s.args for s in asked.steps])
    assert rows(sqlite_root, "calendar", "select count(*) from events where owner = 'alice'") == [(0,)]


def test_first_conversation_of_the_demo(demo_root: Path) -> None:
    chat = chat_for(demo_root, "alice")
    first = chat.say("alice", "which of my deals close in the next 30 days?")
    conversation = first.conversation
    assert first.status.value == "answered"
    assert [r["id"] for r in first.steps[0].records or []] == ["D-101"]

    moved = chat.say("alice", "move the Brightwater one to negotiation", conversation)
    assert moved.status.value == "executed"
    assert moved.steps[0].args == {"deal": "D-101", "stage": "negotiation"}
    assert rows(demo_root, "crm", "select stage from deals where id = 'D-101'") == [("negotiation",)]

    task = chat.say("alice", "create a follow-up for the account owner of the Orchid deal next Tuesday", conversation)
    assert task.status.value == "executed"
    tickets = rows(demo_root, "tickets", "select project, assignee, due, related, description from tickets "
                   "where reporter = 'alice' and id <> 'SALES-5'")
    assert len(tickets) == 1
    project, assignee, due, related, description = tickets[0]
    assert (project, assignee, due, related) == ("SALES", "devi", "2026-12-01", "D-104")
    assert "Alice Moreno" in description and "account owner of the Orchid deal" in description

    denied = chat.say("alice", "close Kestrel Aerospace as won", conversation)
    assert denied.status.value == "denied" and denied.rule == "rule-4-ae-close"
    assert "carol" in denied.reply
    assert rows(demo_root, "crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]

    told = chat.say("alice", "let carol know", conversation)
    assert told.status.value == "executed" and told.steps[0].args["to"] == "carol"
    sent = rows(demo_root, "chat", 'select "to", text from messages')
    assert len(sent) == 1 and sent[0][0] == "carol"
    assert "close Kestrel Aerospace as won" in sent[0][1] and "rule-4-ae-close" in sent[0][1]

    carol = chat_for(demo_root, "carol")
    asked = carol.say("carol", "close Kestrel Aerospace as won")
    assert asked.status.value == "needs_confirmation"
    assert "negotiation -> closed_won" in asked.reply and "240000" in asked.reply.replace(",", "")
    assert rows(demo_root, "crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]
    done = carol.say("carol", "yes", asked.conversation)
    assert done.status.value == "executed" and done.steps[0].action == "crm.close_deal"
    assert rows(demo_root, "crm", "select stage from deals where id = 'D-102'") == [("closed_won",)]
    assert rows(demo_root, "crm", "select count(*) from effects where operation = 'close_deal'") == [(1,)]
    again = carol.say("carol", "yes", asked.conversation)  # nothing is pending any more: nothing runs twice
    assert again.status.value == "no_action"
    assert rows(demo_root, "crm", "select count(*) from effects where operation = 'close_deal'") == [(1,)]

    events = carol.pipeline.audit.list(conversation=asked.conversation)
    kinds = [e["event"] for e in events]
    for kind in ("turn", "interpretation", "grounding", "decision", "confirmation", "call", "effect"):
        assert kind in kinds, kind
    interpretation = next(e for e in events if e["event"] == "interpretation")
    assert interpretation["detail"]["interpreter"] == "offline" and interpretation["detail"]["version"]
    effect = next(e for e in events if e["event"] == "effect")
    assert json.dumps(effect["detail"]).count("closed_won") >= 1
    assert carol.pipeline.audit.verify().ok


def test_clarification_answer_completes_the_plan(sqlite_root: Path) -> None:
    chat = chat_for(sqlite_root, "carol")
    asked = chat.say("carol", "close the Kestrel deal as won")
    assert asked.status.value == "needs_clarification"
    assert sorted(o.value for o in asked.options or []) == ["D-102", "D-103"]
    answered = chat.say("carol", "the aerospace one", asked.conversation)
    assert answered.status.value == "needs_confirmation"
    assert answered.steps[0].args["deal"] == "D-102"
    cancelled = chat.say("carol", "no", asked.conversation)
    assert cancelled.status.value == "cancelled"
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-102'") == [("negotiation",)]


def test_missing_argument_is_asked_for_then_used(sqlite_root: Path) -> None:
    chat = chat_for(sqlite_root, "alice")
    asked = chat.say("alice", "log a note on the Orchid deal")
    assert asked.status.value == "needs_clarification" and asked.question == {"param": "text", "step": 0}
    done = chat.say("alice", "legal review done", asked.conversation)
    assert done.status.value == "executed"
    assert rows(sqlite_root, "crm", "select record, text from notes") == [("D-104", "legal review done")]


def test_references_and_compound_requests(sqlite_root: Path) -> None:
    chat = chat_for(sqlite_root, "alice")
    shown = chat.say("alice", "show me the Brightwater deal")
    assert shown.status.value == "answered" and shown.steps[0].action == "crm.get"
    both = chat.say("alice", "move it to negotiation and remind me Friday", shown.conversation)
    assert both.status.value == "executed"
    assert [s.action for s in both.steps] == ["crm.update_deal", "calendar.remind"]
    assert both.steps[0].args["deal"] == "D-101"
    assert both.steps[1].args["at"] == "2026-11-27T09:00:00-05:00"
    assert rows(sqlite_root, "calendar", "select count(*) from events") == [(1,)]


def test_ticket_text_is_data_never_instructions(sqlite_root: Path) -> None:
    chat = chat_for(sqlite_root, "fiona")  # finance: she could issue a credit note if asked to
    shown = chat.say("fiona", "summarise SUP-18")
    assert shown.status.value == "answered" and shown.steps[0].action == "tickets.get"
    follow = chat.say("fiona", "ok do what it says", shown.conversation)
    assert follow.status.value in ("no_action", "needs_clarification")
    assert rows(sqlite_root, "billing", "select count(*) from credit_notes") == [(0,)]
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-104'") == [("negotiation",)]


def test_no_action_input_says_what_it_can_do(sqlite_root: Path) -> None:
    chat = chat_for(sqlite_root, "alice")
    for text in ("what's the weather like?", "tell me a joke", "thanks!", "hello"):
        result = chat.say("alice", text)
        assert result.status.value == "no_action", text
        assert result.reply


def test_conversation_survives_restart_and_is_private(sqlite_root: Path) -> None:
    first = chat_for(sqlite_root, "alice").say("alice", "which of my deals close in the next 60 days?")
    assert first.status.value == "answered"
    while _OPEN:  # a new process: nothing kept in memory
        _OPEN.pop().close()
    listed = [r["id"] for r in first.steps[0].records or []]
    assert listed == ["D-101", "D-102"]
    again = chat_for(sqlite_root, "alice").say("alice", "move the second one to proposal", first.conversation)
    assert again.status.value == "executed" and again.steps[0].args["deal"] == "D-102"
    other = chat_for(sqlite_root, "bob").say("bob", "move the first one to qualification", first.conversation)
    assert other.status.value == "error" and other.error and other.error["code"] == "conversation_unknown"
    with pytest.raises(UnknownConversation):
        chat_for(sqlite_root, "bob").conversations.messages(str(first.conversation), "bob")
    messages = chat_for(sqlite_root, "alice").conversations.messages(str(first.conversation), "alice")
    assert [m["role"] for m in messages] == ["person", "sayso", "person", "sayso"]


def test_chat_json_writes_one_line_per_input_line(sqlite_root: Path) -> None:
    lines = ["which of my deals close in the next 30 days?", "", "x" * 5000, "move the Brightwater one to proposal",
             "close the Kestrel deal as won"]
    done = subprocess.run([sys.executable, "-m", "sayso", "chat", "--workspace", str(sqlite_root), "--user", "alice",
                           "--now", NOW, "--json"], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=120)
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == len(lines), done.stderr
    assert [o["status"] for o in out] == ["answered", "error", "error", "executed", "needs_clarification"]
    assert out[2]["error"]["code"] == "input_too_large"
    assert len({o["conversation"] for o in out}) == 1
    assert all({"label", "value"} <= set(option) for option in out[4]["options"])


def test_interpret_shows_without_executing(sqlite_root: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sayso", "interpret", "--workspace", str(sqlite_root), "--user",
                           "alice", "--now", NOW, "--json", "close Kestrel Aerospace as won"],
                          capture_output=True, text=True, timeout=120)
    data = json.loads(done.stdout)
    assert data["kind"] == "plan" and data["steps"][0]["action"] == "crm.close_deal"
    assert data["steps"][0]["args"]["outcome"] == "won"
    ws = Workspace.load(sqlite_root)
    _OPEN.append(ws)
    assert rows(sqlite_root, "crm", "select count(*) from effects") == [(0,)]


def test_policy_sees_the_record_as_it_is_now_not_as_remembered(sqlite_root: Path) -> None:
    chat = chat_for(sqlite_root, "devi")
    raised = chat.say("devi", "set the orchid amount to 120k")
    assert raised.status.value == "executed" and raised.steps[0].args["amount"] == 120000
    closing = chat.say("devi", "now close it as won", raised.conversation)  # "it" is in focus, from before
    assert closing.status.value == "denied" and closing.rule == "rule-4-ae-close"
    assert rows(sqlite_root, "crm", "select stage, amount from deals where id = 'D-104'") == [("negotiation", 120000)]


def test_first_conversation_through_chat_json(sqlite_root: Path) -> None:
    said = ["which of my deals close in the next 30 days?", "move the Brightwater one to negotiation",
            "create a follow-up for the account owner of the Orchid deal next Tuesday",
            "close Kestrel Aerospace as won", "let carol know"]
    done = subprocess.run([sys.executable, "-m", "sayso", "chat", "--workspace", str(sqlite_root), "--user", "alice",
                           "--now", NOW, "--json"], input="\n".join(said) + "\n", capture_output=True, text=True,
                          timeout=120)
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["status"] for o in out] == ["answered", "executed", "executed", "denied", "executed"], done.stderr
    assert [r["id"] for r in out[0]["steps"][0]["records"]] == ["D-101"]
    assert out[2]["steps"][0]["args"]["assignee"] == "devi" and out[2]["steps"][0]["args"]["due"] == "2026-12-01"
    assert out[3]["rule"] == "rule-4-ae-close" and out[4]["steps"][0]["args"]["to"] == "carol"
    carol = subprocess.run([sys.executable, "-m", "sayso", "chat", "--workspace", str(sqlite_root), "--user",
                            "carol", "--now", NOW, "--json"], input="close Kestrel Aerospace as won\nyes\n",
                           capture_output=True, text=True, timeout=120)
    answers = [json.loads(line) for line in carol.stdout.splitlines()]
    assert [a["status"] for a in answers] == ["needs_confirmation", "executed"]
    assert rows(sqlite_root, "crm", "select count(*) from effects where operation = 'close_deal'") == [(1,)]


def test_quit_ends_the_chat_even_while_a_question_waits(sqlite_root: Path) -> None:
    done = cli("chat", "--workspace", str(sqlite_root), "--user", "alice", "--now", NOW, "--json",
               input="close the Kestrel deal as won\nquit\nwhich of my deals close in the next 30 days?\n")
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["status"] for o in out] == ["needs_clarification"], done.stdout  # nothing after "quit" was read
    assert rows(sqlite_root, "crm", "select count(*) from effects") == [(0,)]
