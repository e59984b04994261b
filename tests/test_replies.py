"""Replies are written for people: golden texts of reads, changes, cards, denials and failures, and the demo's
conversations walked with every reply checked for action names, Python reprs and log lines."""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from sayso import reply
from sayso.cli import _logs_aside
from sayso.conversation import Chat
from sayso.demo.catalog import catalog as demo_catalog
from sayso.turn import StepResult, StepStatus

from .conftest import pipeline_for

_MACHINE = re.compile(r"\b(?:crm|tickets|billing|calendar|chat|email)\.[a-z_]+|\b\w+=(?:True|False|None|'|\d)"
                      r"|Field required|WARNING|Traceback|\{'|\[c_")


def _clean(text: str) -> None:
    assert not _MACHINE.search(text), text


def test_golden_replies_of_the_first_conversation(sqlite_root: Path) -> None:
    alice = Chat(pipeline_for(sqlite_root, "alice"))
    said = []
    conversation = None
    for text in ("which of my deals close in the next 30 days?", "move the Brightwater one to negotiation",
                 "close Kestrel Aerospace as won", "let carol know", "undo that"):
        result = alice.say("alice", text, conversation)
        conversation = result.conversation
        said.append(result.reply)
    assert said == [
        "Found 1 deal:\n- D-101 Brightwater Expansion: account Brightwater Dental, amount 48000, stage proposal, "
        "close date 2026-12-15, owner alice",
        "Done: D-101 Brightwater Expansion: stage proposal -> negotiation",
        "Not done: account executives may close their own deals when the amount is at most 100,000; your "
        "manager, carol, may do this. (rule rule-4-ae-close)",
        "Done: M-1 Alice Moreno asked: \"close Kestrel Aerospace as won\". It...: new, to carol",
        "Undone: send a chat message to a person or a channel.",
    ]


def test_the_note_to_the_manager_is_written_for_her(sqlite_root: Path) -> None:
    alice = Chat(pipeline_for(sqlite_root, "alice"))
    denied = alice.say("alice", "close Kestrel Aerospace as won")
    alice.say("alice", "let carol know", denied.conversation)
    with sqlite3.connect(sqlite_root / "systems" / "chat.db") as conn:
        [(to, text)] = conn.execute('select "to", text from messages').fetchall()
    assert to == "carol"
    assert "your manager, carol" not in text and "as Alice Moreno's manager, you may do this" in text


def test_golden_confirmation_card(sqlite_root: Path) -> None:
    carol = Chat(pipeline_for(sqlite_root, "carol"))
    card = carol.say("carol", "close Kestrel Aerospace as won")
    assert card.confirmation is not None
    assert card.reply == (
        "This needs your confirmation:\n"
        "- Close a deal as won or lost: deal D-102, outcome won (high risk)\n"
        "  D-102 Kestrel Aerospace Platform: stage negotiation -> closed_won, amount 240000\n"
        f"Say \"yes\" to go ahead or \"no\" to drop it (or `sayso confirm {card.confirmation['id']}`; "
        f"expires {card.confirmation['expires_at']}).")


def test_failures_and_missing_values_are_sentences() -> None:
    actions = {a.name: a for a in demo_catalog}
    failed = StepResult(action="tickets.update", args={}, risk="medium", status=StepStatus.FAILED,
                        error="update: give a status, a priority or an assignee")
    missing = StepResult(action="tickets.create", args={}, risk="low", status=StepStatus.FAILED,
                         error="title: Field required")
    assert reply.effects([failed, missing], actions) == (
        "I could not change a ticket's status, priority or assignee: give a status, a priority or an assignee\n"
        "I could not create a task, follow-up or ticket: the title is missing")
    assert reply.records(actions["crm.find_deals"], []) == "I found nothing that matches."
    shown = reply.records(actions["tickets.find"], [{"type": "ticket", "id": "SUP-1", "title": "SSO", "deleted": False,
                                                     "status": "open", "version": 3}])
    assert shown == "Found 1 ticket:\n- SUP-1 SSO: status open"


@pytest.mark.parametrize("user,turns", [
    ("alice", ["which of my deals close in the next 30 days?", "move the Brightwater one to negotiation",
               "create a follow-up for the account owner of the Orchid deal next Tuesday",
               "close Kestrel Aerospace as won", "let carol know", "undo that", "show me the open tickets",
               "cancel that meeting", "remind me tomorrow at 9 to call Orchid", "undo the reminder", "yes"]),
    ("carol", ["close Kestrel Aerospace as won", "which deals are in negotiation?", "go ahead"]),
    ("fiona", ["issue a credit note of 2,000 to Orchid Pharma for the late delivery", "actually make it 2,500",
               "never mind"]),
])
def test_no_reply_holds_machine_text(sqlite_root: Path, user: str, turns: list[str]) -> None:
    chat = Chat(pipeline_for(sqlite_root, user))
    conversation = None
    for text in turns:
        result = chat.say(user, text, conversation)
        conversation = result.conversation
        _clean(result.reply)


def test_log_lines_stay_out_of_a_chat_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    loud = logging.StreamHandler(sys.stderr)
    root.addHandler(loud)
    try:
        _logs_aside(tmp_path)
        logging.getLogger("sayso").warning("step failed", extra={"conversation": "c_1"})
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
    assert "step failed" not in capsys.readouterr().err
    assert "WARNING sayso [c_1] step failed" in (tmp_path / ".sayso-chat.log").read_text()


def test_golden_replies_of_a_correction_and_a_delegation(sqlite_root: Path) -> None:
    fiona = Chat(pipeline_for(sqlite_root, "fiona"))
    asked = fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the late delivery")
    changed = fiona.say("fiona", "actually make it 2,500", asked.conversation)
    assert changed.reply.split("\n")[:3] == [
        "Changed the amount from 2,000 to 2,500.",
        "This needs your confirmation:",
        "- Issue a credit note against an account: account Orchid Pharma, amount 2500, reason the late delivery "
        "(high risk)",
    ]
    kept = fiona.say("fiona", "make it Friday instead", asked.conversation)
    assert kept.reply == ("I could not change that: I could not tell which part of the request 'Friday' should "
                          "change. Your request \"issue a credit note of 2,000 to Orchid Pharma for the late "
                          "delivery (changed the amount from 2,000 to 2,500)\" is still waiting for your "
                          "confirmation.")
    alice = Chat(pipeline_for(sqlite_root, "alice"))
    denied = alice.say("alice", "move the orchid deal to proposal")
    alice.say("alice", "tell its owner to do it", denied.conversation)
    with sqlite3.connect(sqlite_root / "systems" / "email.db") as conn:
        [(body,)] = conn.execute("select body from emails").fetchall()
    assert body == ("Could you do this for Alice Moreno: \"move the orchid deal to proposal\" (D-104 Orchid "
                    "Renewal)? Alice Moreno may not do it: account executives may update the stage, amount and "
                    "close date of the open deals they own; you could (so could wes or ines).")
    for text in (changed.reply, kept.reply, body):
        _clean(text)


def test_golden_questions_and_errors_in_words(sqlite_root: Path) -> None:
    sam = Chat(pipeline_for(sqlite_root, "sam"))
    assert sam.say("sam", "set SUP-17 to high priority").reply == (
        "Nothing needed to change: ticket SUP-17, priority high already.")
    fiona = Chat(pipeline_for(sqlite_root, "fiona"))
    assert fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma").reply == "What should the reason be?"
    wrong = fiona.say("fiona", "issue a credit note of -500 to Orchid Pharma for the outage")
    assert wrong.reply == "I could not do that: the amount must be positive; -500 was given."
    assert wrong.error and wrong.error["message"].startswith("billing.issue_credit_note: ")  # for programs
    assert reply.error_reply("no deal matches 'Zebra'") == "I could not do that: no deal matches 'Zebra'."
    assert reply.error_reply("I could not find 'x'") == "I could not find 'x'"
