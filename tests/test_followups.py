"""A conversation that follows what was said: corrections amend the pending plan (checked again, the old card
superseded) and "ask devi to do it" after a denial carries the request to that person, in words for them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sayso.conversation import Chat

from .conftest import pipeline_for


def chat_for(root: Path, user: str) -> Chat:
    return Chat(pipeline_for(root, user))


def rows(root: Path, system: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return conn.execute(sql).fetchall()


def test_a_correction_amends_the_card_and_the_old_one_is_superseded(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    asked = fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the late delivery")
    assert asked.status.value == "needs_confirmation" and asked.confirmation
    old = asked.confirmation["id"]
    changed = fiona.say("fiona", "actually make it 2,500", asked.conversation)
    assert changed.status.value == "needs_confirmation" and changed.confirmation
    assert changed.confirmation["id"] != old
    assert changed.reply.startswith("Changed the amount from 2,000 to 2,500.")
    assert changed.steps[0].args["amount"] == 2500 and changed.steps[0].args["account"] == "Orchid Pharma"
    stale = fiona.pipeline.confirm("fiona", old)  # the old card can no longer be approved
    assert stale.status.value == "error" and "superseded" in stale.reply
    assert [c.id for c in fiona.pipeline.pending("fiona")] == [changed.confirmation["id"]]
    done = fiona.say("fiona", "yes", asked.conversation)
    assert done.status.value == "executed"
    assert rows(sqlite_root, "billing", "select amount from credit_notes") == [(2500,)]


def test_a_correction_is_checked_again_by_the_policy(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    asked = fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the late delivery")
    over = fiona.say("fiona", "change the amount to 30,000", asked.conversation)
    assert over.status.value == "denied" and over.rule == "rule-6-credit-limit"
    assert "Changed the amount from 2,000 to 30,000." in over.reply
    assert fiona.pipeline.pending("fiona") == []  # neither card can be approved
    assert fiona.say("fiona", "yes", asked.conversation).status.value == "no_action"
    assert rows(sqlite_root, "billing", "select count(*) from credit_notes") == [(0,)]


def test_a_correction_that_fits_nothing_keeps_the_card(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    asked = fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the late delivery")
    assert asked.confirmation
    kept = fiona.say("fiona", "make it Friday instead", asked.conversation)
    assert kept.status.value == "no_action"
    assert "could not change that" in kept.reply and "still waiting" in kept.reply
    done = fiona.say("fiona", "go ahead", asked.conversation)
    assert done.status.value == "executed"
    assert rows(sqlite_root, "billing", "select amount from credit_notes") == [(2000,)]


def test_a_correction_of_a_person_and_of_a_choice(sqlite_root: Path) -> None:
    carol = chat_for(sqlite_root, "carol")
    asked = carol.say("carol", "close Kestrel Aerospace as won")
    lost = carol.say("carol", "no, make it lost", asked.conversation)
    assert lost.status.value == "needs_confirmation" and lost.steps[0].args["outcome"] == "lost"
    assert "Changed the outcome from won to lost." in lost.reply
    carol.say("carol", "yes", asked.conversation)
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-102'") == [("closed_lost",)]


def test_a_new_request_after_actually_is_not_a_correction(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    asked = fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the late delivery")
    read = fiona.say("fiona", "actually, show me the overdue invoices first", asked.conversation)
    assert read.status.value == "answered"
    assert "still waiting for your confirmation" in read.reply


def test_ask_its_owner_to_do_it_sends_the_request_to_the_owner(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    denied = alice.say("alice", "move the orchid deal to proposal")
    assert denied.status.value == "denied"
    sent = alice.say("alice", "tell its owner to do it", denied.conversation)
    assert sent.status.value == "executed"
    [(to, body)] = rows(sqlite_root, "email", 'select "to", body from emails')  # devi lives in email
    assert "devi@" in to and "alice" not in to
    assert "Alice Moreno" in body and "move the orchid deal to proposal" in body and "D-104" in body
    assert "you could" in body and "devi, wes or ines could" not in body
    assert rows(sqlite_root, "chat", "select count(*) from messages") == [(0,)]


def test_ask_devi_to_do_it_and_ask_my_manager(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    denied = alice.say("alice", "close Kestrel Aerospace as won")
    sent = alice.say("alice", "ask my manager to do it", denied.conversation)
    assert sent.status.value == "executed"
    [(to, text)] = rows(sqlite_root, "chat", 'select "to", text from messages')
    assert to == "carol"
    assert "Could you do this for Alice Moreno" in text and "D-102" in text
    assert "as Alice Moreno's manager, you may do this" in text and "your manager" not in text
    again = alice.say("alice", "ask devi to do it", denied.conversation)
    assert again.status.value == "executed"
    assert len(rows(sqlite_root, "email", "select id from emails")) == 1


def test_the_first_one_after_a_list_of_invoices_is_its_account(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    listed = fiona.say("fiona", "show overdue invoices")
    assert [r["id"] for r in listed.steps[0].records or []] == ["INV-2041", "INV-2044"]
    second = fiona.say("fiona", "issue a credit note of 2,000 to the second one for the outage", listed.conversation)
    assert second.status.value == "needs_confirmation"
    assert second.steps[0].args["account"] == "Cobalt Retail Group"
    fiona.say("fiona", "no", listed.conversation)
    first = fiona.say("fiona", "issue a credit note of 2,000 to the first one", listed.conversation)
    assert first.status.value == "needs_clarification" and first.reply == "What should the reason be?"
    asked = fiona.say("fiona", "the invoice was wrong", listed.conversation)
    assert asked.status.value == "needs_confirmation"
    assert asked.steps[0].args == {"account": "Orchid Pharma", "amount": 2000, "reason": "the invoice was wrong"}


def test_the_sso_one_after_a_list_of_tickets_is_the_ticket(sqlite_root: Path) -> None:
    sam = chat_for(sqlite_root, "sam")
    listed = sam.say("sam", "show open support tickets")
    bumped = sam.say("sam", "bump the SSO one to low", listed.conversation)
    assert bumped.status.value == "executed"
    assert bumped.steps[0].action == "tickets.update" and bumped.steps[0].args == {"ticket": "SUP-17",
                                                                                  "priority": "low"}
    assert rows(sqlite_root, "tickets", "select priority from tickets where id = 'SUP-17'") == [("low",)]


def test_choosing_the_action_by_number_keeps_the_record(sqlite_root: Path) -> None:
    sam = chat_for(sqlite_root, "sam")
    asked = sam.say("sam", "bump the SSO one to low")
    if asked.status.value == "needs_clarification" and asked.options:
        number = next(i for i, o in enumerate(asked.options, 1) if o.value == "tickets.update")
        chosen = sam.say("sam", str(number), asked.conversation)
    else:
        chosen = asked
    assert chosen.status.value == "executed", chosen.reply
    assert chosen.steps[0].args == {"ticket": "SUP-17", "priority": "low"}


def test_a_change_that_names_nothing_to_change_asks_what_should(sqlite_root: Path) -> None:
    sam = chat_for(sqlite_root, "sam")
    listed = sam.say("sam", "show open support tickets")
    asked = sam.say("sam", "bump the SSO one to urgent", listed.conversation)  # "urgent" is no priority
    assert asked.status.value == "needs_clarification"
    assert asked.reply == ("What should change: the status (open, in progress, closed), the priority (low, medium, "
                           "high) or the assignee?")
    assert rows(sqlite_root, "tickets", "select count(*) from effects") == [(0,)]
    done = sam.say("sam", "low", listed.conversation)
    assert done.status.value == "executed" and done.steps[0].args == {"ticket": "SUP-17", "priority": "low"}
    assert rows(sqlite_root, "tickets", "select priority from tickets where id = 'SUP-17'") == [("low",)]


def test_a_question_for_a_record_offers_what_was_just_shown(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    listed = fiona.say("fiona", "show overdue invoices")
    asked = fiona.say("fiona", "issue a credit note of 2,000 for the outage", listed.conversation)
    assert asked.status.value == "needs_clarification"
    assert asked.reply == "Which account? Orchid Pharma; Cobalt Retail Group"
    assert [o.value for o in asked.options or []] == ["Orchid Pharma", "Cobalt Retail Group"]
    chosen = fiona.say("fiona", "2", listed.conversation)
    assert chosen.status.value == "needs_confirmation"
    assert chosen.steps[0].args == {"account": "Cobalt Retail Group", "amount": 2000, "reason": "the outage"}


def test_after_a_denial_an_incomplete_change_completes_the_denied_request(sqlite_root: Path) -> None:
    fiona = chat_for(sqlite_root, "fiona")
    denied = fiona.say("fiona", "issue a credit note of 30,000 to Kestrel Analytics for the outage")
    assert denied.status.value == "denied"
    changed = fiona.say("fiona", "change the amount to 15000", denied.conversation)
    assert changed.status.value == "needs_confirmation"
    assert changed.steps[0].args == {"account": "Kestrel Analytics", "amount": 15000, "reason": "the outage"}
    assert changed.reply.startswith("Changed the amount from 30,000 to 15,000.")
    assert fiona.say("fiona", "yes", denied.conversation).status.value == "executed"
    assert rows(sqlite_root, "billing", "select amount from credit_notes") == [(15000,)]
