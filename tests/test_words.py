"""Confirmations, undo and cancellation in everyday words, through the conversation layer that every
channel uses: "go ahead", "never mind", "undo the reminder", "undo that", "cancel that meeting"."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sayso.conversation import Chat
from sayso.words import read

from .conftest import pipeline_for


def chat_for(root: Path, user: str) -> Chat:
    return Chat(pipeline_for(root, user))


def rows(root: Path, system: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "systems" / f"{system}.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize(("text", "kind", "what"), [
    ("yes", "affirm", ""), ("Go ahead", "affirm", ""), ("do it", "affirm", ""), ("sure!", "affirm", ""),
    ("confirm", "affirm", ""), ("approve", "affirm", ""), ("ok, go ahead please", "affirm", ""),
    ("no", "decline", ""), ("cancel", "decline", ""), ("never mind", "decline", ""), ("don't", "decline", ""),
    ("undo that", "undo", ""), ("undo my last change", "undo", ""), ("undo the reminder", "undo", "reminder"),
    ("cancel that meeting", "cancel", "meeting"),
])
def test_everyday_words_are_read(text: str, kind: str, what: str) -> None:
    said = read(text)
    assert said is not None and (said.kind, said.what) == (kind, what)


@pytest.mark.parametrize("text", ["yes, and move D-104 to proposal", "no need to ping carol, just log a note",
                                  "remind me to cancel the meeting with devi", "undo"[:0] + "show my deals"])
def test_requests_are_not_answers(text: str) -> None:
    assert read(text) is None


def test_go_ahead_approves_and_never_mind_declines(sqlite_root: Path) -> None:
    carol = chat_for(sqlite_root, "carol")
    asked = carol.say("carol", "close Kestrel Aerospace as won")
    assert asked.status.value == "needs_confirmation"
    done = carol.say("carol", "go ahead", asked.conversation)
    assert done.status.value == "executed"
    assert rows(sqlite_root, "crm", "select stage from deals where id = 'D-102'") == [("closed_won",)]

    fiona = chat_for(sqlite_root, "fiona")
    again = fiona.say("fiona", "issue a credit note of 2,000 to Orchid Pharma for the late delivery")
    assert again.status.value == "needs_confirmation"
    dropped = fiona.say("fiona", "never mind", again.conversation)
    assert dropped.status.value == "cancelled"
    assert fiona.pipeline.pending("fiona") == []
    nothing = fiona.say("fiona", "do it", again.conversation)
    assert nothing.status.value == "no_action"


def test_an_unrelated_request_leaves_the_card_in_place(sqlite_root: Path) -> None:
    carol = chat_for(sqlite_root, "carol")
    asked = carol.say("carol", "close Kestrel Aerospace as won")
    assert asked.status.value == "needs_confirmation"
    read_meanwhile = carol.say("carol", "which deals are in negotiation?", asked.conversation)
    assert read_meanwhile.status.value == "answered"
    assert "still waiting for your confirmation" in read_meanwhile.reply
    assert "close Kestrel Aerospace as won" in read_meanwhile.reply
    done = carol.say("carol", "yes", asked.conversation)
    assert done.status.value == "executed" and done.steps[0].action == "crm.close_deal"


def test_undo_in_words_picks_the_step_of_that_kind(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    reminded = alice.say("alice", "remind me tomorrow at 9 to call Orchid")
    assert reminded.status.value == "executed"
    conversation = reminded.conversation
    pinged = alice.say("alice", "ping devi on chat: the Orchid call is tomorrow", conversation)
    assert pinged.status.value == "executed" and pinged.steps[0].action == "chat.send"

    undone = alice.say("alice", "undo the reminder", conversation)
    assert undone.status.value == "executed"
    assert undone.steps[0].action != "chat.send" and "calendar" in undone.steps[0].action
    assert rows(sqlite_root, "chat", "select count(*) from messages") == [(1,)]

    last = alice.say("alice", "undo that", conversation)
    assert last.status.value == "executed"
    assert "chat" in last.steps[0].action

    nothing = alice.say("alice", "undo the reminder", conversation)
    assert nothing.status.value == "no_action"


def test_cancel_that_meeting_says_plainly_it_cannot(sqlite_root: Path) -> None:
    alice = chat_for(sqlite_root, "alice")
    answer = alice.say("alice", "cancel that meeting")
    assert answer.status.value == "no_action"
    assert "cannot cancel a meeting" in answer.reply
    assert not answer.steps
